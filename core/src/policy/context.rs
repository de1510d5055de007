//! What a policy expression can see of a request: `context` in APIM's expressions.
//!
//! The pipeline builds one `Context` per request from the parsed head, and
//! policies change it (headers, URL, method, body, variables, response); the
//! upstream request and the client response are written from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::cert_store::CertificateStore;
use crate::cert::ClientCertificate;
use crate::expr::Value;
// Plain HTTP data, re-exported here because `Context` is made of them and
// expression code names them from here.
pub use crate::http::message::{Headers, Response, Url};

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
    /// The certificate the client sent during the TLS handshake
    /// (`context.Request.Certificate`).
    pub certificate: Option<Arc<ClientCertificate>>,
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
    /// The operation's contract from the API's OpenAPI document, if it has one.
    pub contract: Option<Arc<super::validate::contract::OperationContract>>,
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
    /// The revision's CAs, CRLs and certificates (client-certificate checks,
    /// `context.Deployment.Certificates`).
    pub certificates: Arc<CertificateStore>,
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
    /// The backend TLS policies chose (`set-backend-service`, `authentication-certificate`).
    pub backend_tls: super::auth_cert::BackendTlsChoice,
}
