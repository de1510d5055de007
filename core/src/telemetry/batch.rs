//! The unit of telemetry upload: request records with an id, so the management
//! plane stores each batch once however often a gateway retries it.

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;

/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Largest encoded batch the management plane accepts, in bytes.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Request records uploaded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// Unique per batch: the instance id and a sequence number.
    pub id: String,
    /// The gateway process that made the batch.
    pub instance: String,
    /// Records dropped before this batch because the buffer was full (or the
    /// in-memory queue overflowed), since the previous batch.
    #[serde(default)]
    pub dropped: u64,
    /// The records, oldest first.
    pub records: Vec<RequestRecord>,
}

/// Why uploaded bytes are not a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Not JSON of a batch.
    #[error("not a telemetry batch: {0}")]
    Invalid(#[from] serde_json::Error),
    /// The id is empty or longer than 200 bytes.
    #[error("a batch id must have 1 to 200 bytes")]
    BadId,
    /// More records than [`MAX_BATCH_RECORDS`].
    #[error("a batch holds at most {MAX_BATCH_RECORDS} records, this one {0}")]
    TooManyRecords(usize),
}

impl Batch {
    /// The id of batch `seq` of instance `instance`.
    pub fn id_for(instance: &str, seq: u64) -> String {
        format!("{instance}-{seq}")
    }

    /// JSON bytes of the batch.
    pub fn to_json(&self) -> Vec<u8> {
        // A batch is plain data: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a batch.
    pub fn from_json(bytes: &[u8]) -> Result<Batch, BatchError> {
        let batch: Batch = serde_json::from_slice(bytes)?;
        if batch.id.is_empty() || batch.id.len() > 200 {
            return Err(BatchError::BadId);
        }
        if batch.records.len() > MAX_BATCH_RECORDS {
            return Err(BatchError::TooManyRecords(batch.records.len()));
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::{CacheStatus, ErrorInfo};

    fn record() -> RequestRecord {
        RequestRecord {
            timestamp_ms: 1_700_000_000_000,
            request_id: "0b6b8a52-3c4e-4d0a-9a57-0f1e2d3c4b5a".into(),
            gateway: "gw".into(),
            instance: "i1".into(),
            api: "echo".into(),
            operation: "get".into(),
            product: Some("starter".into()),
            subscription: Some("sub1".into()),
            method: "GET".into(),
            path: "/echo/x".into(),
            status: 502,
            client_ip: "127.0.0.1".into(),
            bytes_in: 80,
            bytes_out: 120,
            total_us: 1500,
            backend_us: 1000,
            gateway_us: 500,
            cache: CacheStatus::Miss,
            error: Some(ErrorInfo {
                source: "backend".into(),
                reason: "BackendConnectionFailure".into(),
            }),
            weight: 1,
            trace_id: None,
            span_id: None,
            parent_span_id: None,
        }
    }

    #[test]
    fn round_trips_and_omits_empty_fields() {
        let batch = Batch {
            id: Batch::id_for("i1", 7),
            instance: "i1".into(),
            dropped: 3,
            records: vec![record()],
        };
        let json = batch.to_json();
        assert_eq!(Batch::from_json(&json).unwrap(), batch);
        let mut bare = record();
        bare.product = None;
        bare.subscription = None;
        bare.error = None;
        bare.cache = CacheStatus::None;
        let text = serde_json::to_string(&bare).unwrap();
        for absent in ["product", "subscription", "error", "cache", "weight"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }

    #[test]
    fn bad_batches_are_refused() {
        assert!(matches!(
            Batch::from_json(b"{\"id\":\"\",\"instance\":\"i\",\"records\":[]}"),
            Err(BatchError::BadId)
        ));
        assert!(matches!(
            Batch::from_json(b"[1]"),
            Err(BatchError::Invalid(_))
        ));
        let many = Batch {
            id: "x".into(),
            instance: "i".into(),
            dropped: 0,
            records: vec![record(); MAX_BATCH_RECORDS + 1],
        };
        assert!(matches!(
            Batch::from_json(&many.to_json()),
            Err(BatchError::TooManyRecords(_))
        ));
    }
}
