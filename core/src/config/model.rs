//! The snapshot document: APIs, operations, backends and named values, as JSON.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::{BackendTls, CaCertificate, Certificate, Hostname};
use super::ConfigError;
pub use crate::http::service_url::Scheme;
use crate::router::{ApiSource, OperationSource};

/// One revision of everything a gateway serves, as the management plane sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Monotonically increasing revision; the management plane's ETag.
    pub revision: u64,
    /// The APIs; routes refer to them by index in this list.
    #[serde(default)]
    pub apis: Vec<Api>,
    /// Backends that APIs can name with `backendId`.
    #[serde(default)]
    pub backends: Vec<Backend>,
    /// Named values for `{{name}}` substitution in policies.
    #[serde(default)]
    pub named_values: Vec<NamedValue>,
    /// Subscriptions whose keys open APIs that require one.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Products: groups of APIs that subscriptions open, with their own policies.
    #[serde(default)]
    pub products: Vec<Product>,
    /// The global policy document (APIM's "All APIs" scope), XML.
    #[serde(default)]
    pub policy: Option<String>,
    /// Policy fragments that documents include with `<include-fragment>`.
    #[serde(default)]
    pub fragments: Vec<PolicyFragment>,
    /// Certificates with their private keys (custom hostnames, client
    /// certificates presented to backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// Trusted CAs for client certificates and backends, with their CRLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<CaCertificate>,
    /// The custom hostnames of the HTTPS listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<Hostname>,
    /// API version sets: APIs that are versions of one API, and how a request
    /// names its version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_sets: Vec<super::versions::VersionSet>,
    /// Where this gateway keeps the policies' shared state (absent: in process,
    /// unless the gateway's own flag says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<super::store::StoreSettings>,
    /// The identity of the management store the snapshot came from (made when its
    /// database was created): a restored database can reach the same revision
    /// with other content, so the revision alone does not identify content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// SHA-256 (lowercase hex) of this snapshot's JSON without this field; see
    /// [`crate::sync::content`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// A product: APIs offered together, opened by one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Product {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// Name shown to people (`context.Product.Name`); defaults to the id.
    #[serde(default)]
    pub display_name: String,
    /// Free text for the portal; may be empty.
    #[serde(default)]
    pub description: String,
    /// Ids of the APIs in the product.
    #[serde(default)]
    pub apis: Vec<String>,
    /// Whether calling its APIs needs a subscription key; an open product's APIs
    /// can be called without one.
    #[serde(default = "default_true")]
    pub subscription_required: bool,
    /// Whether a new subscription waits for an administrator's approval
    /// (`submitted`) instead of being active at once. Written only when set, so
    /// snapshots of configurations that do not use it still load in gateways
    /// older than the field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval_required: bool,
    /// The product-scope policy document, XML.
    #[serde(default)]
    pub policy: Option<String>,
}

/// A reusable piece of policy XML (`<fragment>...</fragment>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyFragment {
    /// Id used by `<include-fragment fragment-id="...">`.
    pub id: String,
    /// The fragment document, XML.
    pub policy: String,
}

/// A subscription: two keys (primary and secondary, for rotation) and what they open.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// Unique id.
    pub id: String,
    /// Name shown to people; may be empty.
    #[serde(default)]
    pub display_name: String,
    /// APIM's scope: `/apis` (every API), `/apis/{apiId}` (one API) or
    /// `/products/{productId}` (the product's APIs, with its policies).
    pub scope: String,
    /// The primary key.
    pub primary_key: String,
    /// The secondary key.
    pub secondary_key: String,
    /// Only an active subscription's keys are accepted.
    #[serde(default)]
    pub state: SubscriptionState,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets: snapshots end up in debug logs.
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("scope", &self.scope)
            .field("primary_key", &"<redacted>")
            .field("secondary_key", &"<redacted>")
            .field("state", &self.state)
            .finish()
    }
}

/// Lifecycle state of a subscription, as APIM names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionState {
    /// Keys are accepted.
    #[default]
    Active,
    /// Not yet approved.
    Submitted,
    /// Temporarily blocked.
    Suspended,
    /// Ended by the subscriber.
    Cancelled,
    /// Past its end date.
    Expired,
    /// Turned down.
    Rejected,
}

/// An API: a path prefix (optionally per host) in front of one upstream service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// Name shown to people; may be empty.
    #[serde(default)]
    pub display_name: String,
    /// APIM's API type: `http` (the default) or `websocket` (a `ws://` or
    /// `wss://` backend, one `GET` operation, `onHandshake`, whose policies
    /// run on the upgrade request; then bytes are relayed both ways).
    #[serde(rename = "type", default, skip_serializing_if = "ApiType::is_http")]
    pub api_type: ApiType,
    /// Free text for the portal; may be empty.
    #[serde(default)]
    pub description: String,
    /// APIM's API URL suffix, `""` for the root API; surrounding `/` are ignored.
    pub path: String,
    /// The version set this API is a version of (APIM's `apiVersionSetId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version_set_id: Option<String>,
    /// The version identifier within its set; `""` or absent is APIM's "Original".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The revision number (1 and up).
    #[serde(
        default = "super::versions::first_revision",
        skip_serializing_if = "super::versions::is_first_revision"
    )]
    pub api_revision: u32,
    /// Whether this is the API's current revision, served at the plain path;
    /// other revisions are served only at `<path>;rev=N`.
    #[serde(
        default = "default_true",
        skip_serializing_if = "super::versions::is_true"
    )]
    pub is_current: bool,
    /// For a non-current revision: the id of the API (its current revision)
    /// this is a revision of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_revision_of: Option<String>,
    /// Release notes of this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_revision_description: Option<String>,
    /// Upstream base URL; required unless `backend_id` is set.
    #[serde(default)]
    pub service_url: Option<String>,
    /// Id of a backend whose URL is the upstream, instead of `service_url`.
    #[serde(default)]
    pub backend_id: Option<String>,
    /// Client-facing schemes the API accepts.
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Scheme>,
    /// Host values (no port) the API is restricted to; empty means any host.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Whether a valid subscription key is needed to call the API.
    #[serde(default = "default_true")]
    pub subscription_required: bool,
    /// Where a client may put its subscription key.
    #[serde(default)]
    pub subscription_key_parameter_names: SubscriptionKeyParameterNames,
    /// Forward the client's Host header (true) or the upstream's authority (false).
    #[serde(default = "default_true")]
    pub preserve_host_header: bool,
    /// How long to wait for the upstream's response head, in seconds (1..=3600).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u32,
    /// The operations; a request must match one of them.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The API's contract: an OpenAPI 3.0 or 3.1 document (JSON), whose
    /// operations are matched to `operations` by method and path. The
    /// validation policies and `mock-response` read it. The management plane
    /// fills it from the document last imported into the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<serde_json::Value>,
    /// The API-scope policy document, XML.
    #[serde(default)]
    pub policy: Option<String>,
    /// Request records of this API: on or off, and the share kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<ApiTelemetry>,
    /// Answer every request that comes over `http` with a redirect to the same
    /// URL over `https` (301 for GET and HEAD, 308 otherwise, so a method and
    /// body are kept), when `protocols` has `https` and the gateway has an
    /// HTTPS listener; otherwise a request over `http` is served or 404'd as
    /// `protocols` says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https_redirect: bool,
}

/// What kind of API an [`Api`] is (APIM's `type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiType {
    /// Requests and responses (APIM's `http`, and `soap` passthrough).
    #[default]
    Http,
    /// WebSocket passthrough: the handshake runs policies, then a tunnel.
    Websocket,
}

impl ApiType {
    /// Whether this is the default, plain HTTP (left out when serialized).
    pub fn is_http(&self) -> bool {
        *self == ApiType::Http
    }
}

/// The id APIM gives a WebSocket API's one operation.
pub const ON_HANDSHAKE: &str = "onHandshake";

/// An API's request-record settings (APIM's diagnostics sampling). Metrics
/// count every request whatever these say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTelemetry {
    /// Whether records of the API's requests are logged and uploaded.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The share of requests recorded, in whole percent (0..=100).
    #[serde(default = "default_sampling")]
    pub sampling_percentage: u8,
}

fn default_sampling() -> u8 {
    100
}

impl Default for ApiTelemetry {
    fn default() -> Self {
        ApiTelemetry {
            enabled: true,
            sampling_percentage: 100,
        }
    }
}

impl Api {
    /// The path with surrounding slashes removed, as the router matches it.
    pub fn normalized_path(&self) -> &str {
        self.path.trim_matches('/')
    }

    /// Whether the API accepts requests that arrived over `scheme`.
    pub fn allows(&self, scheme: Scheme) -> bool {
        self.protocols.contains(&scheme)
    }

    /// The upstream response timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_seconds))
    }
}

/// A method and URL template within an API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Id, unique within the API.
    pub id: String,
    /// Name shown to people; may be empty.
    #[serde(default)]
    pub display_name: String,
    /// Free text for the portal; may be empty.
    #[serde(default)]
    pub description: String,
    /// HTTP method (case-sensitive token), or `*` for any method.
    pub method: String,
    /// Path template after the API path: `/users/{id}`, `/files/*`; a `?query` part is ignored.
    pub url_template: String,
    /// The operation-scope policy document, XML.
    #[serde(default)]
    pub policy: Option<String>,
}

/// A named upstream that APIs can share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// Free text; may be empty.
    #[serde(default)]
    pub description: String,
    /// Base URL of the upstream.
    pub url: String,
    /// How an `https://` URL's TLS is checked, and the certificate presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTls>,
}

/// A name and value for `{{name}}` substitution; a secret value is never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedValue {
    /// Unique name (`A-Z a-z 0-9 - . _ ~`).
    pub name: String,
    /// The value substituted for `{{name}}`.
    pub value: String,
    /// Whether the value must be kept out of logs and the UI.
    #[serde(default)]
    pub secret: bool,
}

impl fmt::Debug for NamedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Snapshots end up in debug logs; a secret must not travel with them.
        let value: &dyn fmt::Debug = if self.secret {
            &"<redacted>"
        } else {
            &self.value
        };
        f.debug_struct("NamedValue")
            .field("name", &self.name)
            .field("value", value)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Where a client may send its subscription key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionKeyParameterNames {
    /// Request header carrying the key.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Query parameter carrying the key.
    #[serde(default = "default_key_query")]
    pub query: String,
}

impl Default for SubscriptionKeyParameterNames {
    fn default() -> Self {
        SubscriptionKeyParameterNames {
            header: default_key_header(),
            query: default_key_query(),
        }
    }
}

impl Snapshot {
    /// Parses a snapshot document; errors carry serde_json's line and column.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, ConfigError> {
        serde_json::from_slice(bytes).map_err(|e| ConfigError::from_json(&e))
    }

    /// Serializes the snapshot (with every default written out).
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, integers, bools and sequences: serde_json cannot fail on them,
        // and an empty document would be refused by from_json rather than misread.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks everything the gateway relies on; the error names the API, operation or entity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        super::validate::check(self).map(|_| ())
    }
}

fn default_protocols() -> Vec<Scheme> {
    vec![Scheme::Http, Scheme::Https]
}

fn default_true() -> bool {
    true
}

fn default_timeout_seconds() -> u32 {
    30
}

fn default_key_header() -> String {
    "Ocp-Apim-Subscription-Key".to_owned()
}

fn default_key_query() -> String {
    "subscription-key".to_owned()
}

impl ApiSource for Api {
    type Operation = Operation;

    fn id(&self) -> &str {
        &self.id
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn hostnames(&self) -> &[String] {
        &self.hostnames
    }

    fn operations(&self) -> &[Operation] {
        &self.operations
    }
}

impl OperationSource for Operation {
    fn id(&self) -> &str {
        &self.id
    }

    fn method(&self) -> &str {
        &self.method
    }

    fn url_template(&self) -> &str {
        &self.url_template
    }
}
