//! What a policy expression can see of a request: `context` in APIM's expressions.
//!
//! The pipeline builds one `Context` per request from the parsed head, and
//! policies change it (headers, URL, method, body, variables, response); the
//! upstream request and the client response are written from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::expr::Value;

/// Header fields of a message: names compared case-insensitively, order and
/// repeated fields kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// No fields.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` joined with `,` as APIM's `GetValueOrDefault` does.
    pub fn get_joined(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (n, v) in &self.entries {
            if n.eq_ignore_ascii_case(name) {
                match &mut out {
                    Some(s) => {
                        s.push(',');
                        s.push_str(v);
                    }
                    None => out = Some(v.clone()),
                }
            }
        }
        out
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field after the existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Replaces every field named `name` with one field.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.entries.push((name.to_string(), value.into()));
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The distinct names, in first-seen order.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (n, _) in &self.entries {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                out.push(n);
            }
        }
        out
    }
}

/// A URL as policies see and change it (`context.Request.Url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address, without port.
    pub host: String,
    /// Port (the scheme's default when the URL had none).
    pub port: u16,
    /// Path, starting with `/`, percent-encoded as received.
    pub path: String,
    /// Query parameters in order, names and values percent-decoded.
    pub query: Vec<(String, String)>,
}

impl Url {
    /// The first value of query parameter `name` (exact, case-sensitive match).
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `?a=1&b=2` (percent-encoded), or empty.
    pub fn query_string(&self) -> String {
        let mut out = String::new();
        for (i, (n, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&crate::policy::urlenc::encode_component(n));
            out.push('=');
            out.push_str(&crate::policy::urlenc::encode_component(v));
        }
        out
    }

    /// The whole URL, as `Url.ToString()` gives it.
    pub fn to_url_string(&self) -> String {
        let default = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        let mut out = format!("{}://{}", self.scheme, self.host);
        if self.port != default {
            out.push_str(&format!(":{}", self.port));
        }
        out.push_str(&self.path);
        out.push_str(&self.query_string());
        out
    }
}

/// The request as it stands (`context.Request`).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// The URL the request will be forwarded to (host and path are the backend's
    /// once `set-backend-service` or `rewrite-uri` ran; before that, the gateway's).
    pub url: Url,
    /// The URL the client asked for (`context.Request.OriginalUrl`).
    pub original_url: Url,
    /// Header fields.
    pub headers: Headers,
    /// The body, when the pipeline buffered it (only if a policy needs it).
    pub body: Option<Bytes>,
    /// Client address (`context.Request.IpAddress`).
    pub ip_address: String,
    /// The backend base path that `url.path` starts with (`rewrite-uri` templates
    /// are relative to it).
    pub base_path: String,
    /// URL template parameters of the matched operation.
    pub matched_parameters: Vec<(String, String)>,
}

/// A response: the backend's, one a policy made, or a `send-request` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase (`StatusReason`).
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
    /// The body, when buffered.
    pub body: Option<Bytes>,
}

/// The error that sent the pipeline to `<on-error>` (`context.LastError`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastError {
    /// The policy (element name) or component that failed, e.g. `rate-limit`, `forward-request`.
    pub source: String,
    /// Machine-readable reason, e.g. `RateLimitExceeded`, `BackendConnectionFailure`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Scope of the failing policy: `global`, `product`, `api` or `operation`.
    pub scope: String,
    /// Section: `inbound`, `backend`, `outbound`.
    pub section: String,
    /// Element path of the failing policy, e.g. `choose\\when[1]\\rate-limit`.
    pub path: String,
    /// The `id` attribute of the failing policy, if it had one.
    pub policy_id: String,
}

/// What the context says about the API (`context.Api`).
#[derive(Debug, Clone, Default)]
pub struct ApiInfo {
    /// API id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Path prefix (without leading `/`).
    pub path: String,
    /// Backend URL (`context.Api.ServiceUrl`).
    pub service_url: Url,
    /// Whether a subscription key is required.
    pub subscription_key_required: bool,
}

/// `context.Operation`.
#[derive(Debug, Clone, Default)]
pub struct OperationInfo {
    /// Operation id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// URL template, e.g. `/users/{id}`.
    pub url_template: String,
}

/// `context.Product`.
#[derive(Debug, Clone, Default)]
pub struct ProductInfo {
    /// Product id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// `context.Subscription` (the key is there because APIM exposes it to expressions).
#[derive(Clone, Default)]
pub struct SubscriptionInfo {
    /// Subscription id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The key the request used.
    pub key: String,
    /// Primary key.
    pub primary_key: String,
    /// Secondary key.
    pub secondary_key: String,
}

impl std::fmt::Debug for SubscriptionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Facts about the whole request that do not change while it runs.
#[derive(Debug, Clone, Default)]
pub struct Static {
    /// `context.Api`.
    pub api: Arc<ApiInfo>,
    /// `context.Operation`.
    pub operation: Arc<OperationInfo>,
    /// `context.Product`, when the subscription is scoped to a product.
    pub product: Option<Arc<ProductInfo>>,
    /// `context.Subscription`, when the request carried a valid key.
    pub subscription: Option<Arc<SubscriptionInfo>>,
    /// `context.Deployment.GatewayId`.
    pub gateway_id: Arc<str>,
    /// `context.Deployment.Region`.
    pub region: Arc<str>,
    /// `context.Deployment.ServiceName`.
    pub service_name: Arc<str>,
}

/// Everything an expression can read: APIM's `context`.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Facts fixed at routing.
    pub fixed: Static,
    /// `context.RequestId` (a GUID string).
    pub request_id: String,
    /// Randomness for `Guid.NewGuid()` and `Random` (an input: the adapter's
    /// secret keys it, so it cannot be guessed from other requests).
    pub rng_seed: u64,
    /// The request, as policies have changed it so far.
    pub request: Request,
    /// The response, once there is one (backend's or a policy's).
    pub response: Option<Response>,
    /// `context.Variables`.
    pub variables: HashMap<String, Value>,
    /// `context.LastError`, in `<on-error>`.
    pub last_error: Option<LastError>,
    /// `context.Elapsed`: time since the request arrived.
    pub elapsed: Duration,
    /// Wall-clock time for `DateTime.UtcNow`, milliseconds since the Unix epoch.
    pub now_unix_ms: i64,
}
