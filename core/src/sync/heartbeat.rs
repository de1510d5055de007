//! The heartbeat a gateway instance sends every minute, and the states it reports.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The body of `POST /gateways/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// This gateway process (random per start).
    pub instance_id: String,
    /// The machine (or container) it runs on.
    pub hostname: String,
    /// The gateway's version.
    pub version: String,
    /// The revision of the configuration in force, if any.
    pub applied_revision: Option<u64>,
    /// The content digest of the configuration in force, if it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
    /// The store identity of the configuration in force, if it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// Seconds since the gateway started.
    pub uptime_seconds: u64,
    /// Whether it serves, and how well.
    pub health: Health,
    /// Whether its last configuration fetch reached the management plane.
    pub connectivity: Connectivity,
    /// Why the latest snapshot was not applied (empty when it was).
    #[serde(default)]
    pub compile_errors: Vec<String>,
    /// What became of the configuration backup.
    #[serde(default)]
    pub backup: BackupStatus,
    /// The policies' shared-state store (absent: in process, nothing to report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_store: Option<Box<StateStoreHealth>>,
}

/// How the gateway's shared-state store (Redis) is doing, as the heartbeat
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateStoreHealth {
    /// Where it is, password hidden (`redis://:***@host:6379/0`).
    pub target: String,
    /// `exact` or `approximate`.
    pub counting: String,
    /// `open` or `closed`.
    pub on_failure: String,
    /// Whether the last call was answered in time.
    pub healthy: bool,
    /// Calls that failed (timed out, refused, unreachable) since start.
    pub errors: u64,
    /// Why the last failed call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Latency of recent calls, 99th percentile, in microseconds.
    #[serde(default)]
    pub p99_micros: u64,
}

/// How well a gateway instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Serving the latest configuration, nothing amiss.
    Healthy,
    /// Serving, but a snapshot was rejected, the backup failed, or the management
    /// plane is unreachable.
    Degraded,
    /// No configuration yet: every request gets 503.
    NotReady,
}

/// Whether the gateway reaches the management plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Connectivity {
    /// No fetch has completed yet.
    Starting,
    /// The last fetch was answered (200 or 304).
    Connected,
    /// The last fetch failed (no answer, 401, or an error status).
    Disconnected,
}

impl Connectivity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::Starting => "starting",
            Connectivity::Connected => "connected",
            Connectivity::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of the configuration backup; on the wire `"none"`, `"saved"`,
/// `"loaded"` or `"error: <reason>"`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackupStatus {
    /// No backup configured, or nothing loaded or saved yet.
    #[default]
    None,
    /// The last applied configuration was saved.
    Saved,
    /// The configuration in force came from the backup at start.
    Loaded,
    /// Loading or saving failed.
    Error(String),
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupStatus::None => f.write_str("none"),
            BackupStatus::Saved => f.write_str("saved"),
            BackupStatus::Loaded => f.write_str("loaded"),
            BackupStatus::Error(reason) => write!(f, "error: {reason}"),
        }
    }
}

impl BackupStatus {
    /// Reads the wire form; anything unknown is kept as an error text.
    pub fn parse(text: &str) -> BackupStatus {
        match text {
            "none" => BackupStatus::None,
            "saved" => BackupStatus::Saved,
            "loaded" => BackupStatus::Loaded,
            other => BackupStatus::Error(
                other
                    .strip_prefix("error:")
                    .map_or(other, str::trim_start)
                    .to_owned(),
            ),
        }
    }
}

impl Serialize for BackupStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BackupStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(BackupStatus::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_the_protocol() {
        let hb = Heartbeat {
            instance_id: "i-1".into(),
            hostname: "host".into(),
            version: "0.1.0".into(),
            applied_revision: Some(12),
            applied_digest: Some("d1".into()),
            store_id: Some("s1".into()),
            uptime_seconds: 123,
            health: Health::NotReady,
            connectivity: Connectivity::Disconnected,
            compile_errors: vec!["bad".into()],
            backup: BackupStatus::Error("checksum".into()),
            state_store: None,
        };
        let json: serde_json::Value = serde_json::to_value(&hb).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "instanceId": "i-1", "hostname": "host", "version": "0.1.0",
                "appliedRevision": 12, "appliedDigest": "d1", "storeId": "s1", "uptimeSeconds": 123, "health": "notReady",
                "connectivity": "disconnected", "compileErrors": ["bad"],
                "backup": "error: checksum"
            })
        );
        let back: Heartbeat = serde_json::from_value(json).unwrap();
        assert_eq!(back, hb);
        let none = Heartbeat {
            applied_revision: None,
            applied_digest: None,
            store_id: None,
            health: Health::Healthy,
            connectivity: Connectivity::Starting,
            backup: BackupStatus::Loaded,
            state_store: None,
            ..hb
        };
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["appliedRevision"], serde_json::Value::Null);
        assert!(json.get("appliedDigest").is_none(), "left out when unknown");
        assert_eq!(json["health"], "healthy");
        assert_eq!(json["connectivity"], "starting");
        assert_eq!(json["backup"], "loaded");
    }

    #[test]
    fn backup_status_reads_back() {
        for s in [
            BackupStatus::None,
            BackupStatus::Saved,
            BackupStatus::Loaded,
            BackupStatus::Error("x: y".into()),
        ] {
            assert_eq!(BackupStatus::parse(&s.to_string()), s);
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let hb: Heartbeat = serde_json::from_str(
            r#"{"instanceId":"i","hostname":"h","version":"v","appliedRevision":null,
                "uptimeSeconds":1,"health":"degraded","connectivity":"connected","extra":1}"#,
        )
        .unwrap();
        assert_eq!(hb.health, Health::Degraded);
        assert_eq!(hb.backup, BackupStatus::None);
    }
}
