//! One record per request: what the access log prints and what is uploaded
//! for analytics.

use serde::{Deserialize, Serialize};

// The cache verdict is the pipeline's; records carry it as it is.
pub use crate::policy::response_cache::CacheStatus;

/// Why a request failed, APIM's `context.LastError` in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Where it failed: `gateway`, `client`, `subscription`, `backend`, or the
    /// name of the policy that failed.
    pub source: String,
    /// The reason in a word, e.g. `OperationNotFound`, `BackendConnectionFailure`.
    pub reason: String,
}

/// One request as the gateway saw it.
///
/// The subscription is named by its id, never by its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Unix time in milliseconds when the request head arrived.
    pub timestamp_ms: i64,
    /// `context.RequestId` (a GUID).
    pub request_id: String,
    /// The gateway's id.
    pub gateway: String,
    /// The gateway process (instance) that served the request.
    pub instance: String,
    /// The API's id; empty when no API matched.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api: String,
    /// The operation's id; empty when no operation matched.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// The product the request was allowed through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The subscription's id (never its key), if a key was given and valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The request method.
    pub method: String,
    /// The request path as the client sent it, without the query.
    pub path: String,
    /// The status sent to the client; 0 when the connection closed before one.
    pub status: u16,
    /// The client's address.
    pub client_ip: String,
    /// Bytes of the request read from the client (head and body).
    pub bytes_in: u64,
    /// Bytes of the response written to the client (head and body).
    pub bytes_out: u64,
    /// From the request head's arrival to the response's end, microseconds.
    pub total_us: u64,
    /// Spent waiting for the backend (connect to end of its response), microseconds.
    pub backend_us: u64,
    /// Spent in the gateway: total minus backend, microseconds.
    pub gateway_us: u64,
    /// Whether the response came from the cache.
    #[serde(default, skip_serializing_if = "CacheStatus::is_none")]
    pub cache: CacheStatus,
    /// Why the request failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// How many requests this record stands for (100 / sampling percentage), so
    /// counts stay right when records are sampled.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// The W3C trace id (32 hex digits), when tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The gateway's span id (16 hex digits), when tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The client's span id, when it sent a `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

fn one() -> u32 {
    1
}

fn is_one(w: &u32) -> bool {
    *w == 1
}

/// The status class label of a status: `1xx` .. `5xx`, or `other`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}
