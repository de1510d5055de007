//! The store's public types: kinds, entities, preconditions, keys, tokens, heartbeats.

use bytes::Bytes;
pub use portcullis_core::sync::heartbeat::StateStoreHealth;
use serde::{Deserialize, Serialize};

/// The kinds of entity the REST API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An API with its operations (core `Api`).
    Api,
    /// A product (core `Product`).
    Product,
    /// A subscription: scope, state, owner and two keys.
    Subscription,
    /// A user of the developer portal.
    User,
    /// A named upstream (core `Backend`).
    Backend,
    /// A named value for `{{name}}` substitution.
    NamedValue,
    /// A policy fragment.
    Fragment,
    /// A gateway: location and assigned APIs; it has two keys.
    Gateway,
    /// A certificate chain with its private key (sealed at rest).
    Certificate,
    /// A trusted CA certificate with its revocation lists.
    CaCertificate,
    /// A custom hostname of a gateway (id `<gateway>/<hostname>`; its routes
    /// are under `/gateways/{id}/hostnames`).
    Hostname,
    /// An API version set (core `VersionSet`).
    VersionSet,
}

impl Kind {
    /// Every kind, in the order the REST API lists them.
    pub const ALL: [Kind; 8] = [
        Kind::Api,
        Kind::Product,
        Kind::Subscription,
        Kind::User,
        Kind::Backend,
        Kind::NamedValue,
        Kind::Fragment,
        Kind::Gateway,
    ];

    /// The kinds with `/{collection}` and `/{collection}/{id}` routes: every
    /// kind of [`ALL`](Self::ALL), certificates and CA certificates.
    pub const ROUTED: [Kind; 11] = [
        Kind::Api,
        Kind::Product,
        Kind::Subscription,
        Kind::User,
        Kind::Backend,
        Kind::NamedValue,
        Kind::Fragment,
        Kind::Gateway,
        Kind::Certificate,
        Kind::CaCertificate,
        Kind::VersionSet,
    ];

    /// Every kind the `entities` table holds.
    pub const STORED: [Kind; 12] = [
        Kind::Api,
        Kind::Product,
        Kind::Subscription,
        Kind::User,
        Kind::Backend,
        Kind::NamedValue,
        Kind::Fragment,
        Kind::Gateway,
        Kind::Certificate,
        Kind::CaCertificate,
        Kind::Hostname,
        Kind::VersionSet,
    ];

    /// The collection's path segment: `apis`, `products`, ..., `named-values`, `policy-fragments`, `gateways`.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Api => "apis",
            Kind::Product => "products",
            Kind::Subscription => "subscriptions",
            Kind::User => "users",
            Kind::Backend => "backends",
            Kind::NamedValue => "named-values",
            Kind::Fragment => "policy-fragments",
            Kind::Gateway => "gateways",
            Kind::Certificate => "certificates",
            Kind::CaCertificate => "ca-certificates",
            Kind::Hostname => "hostnames",
            Kind::VersionSet => "api-version-sets",
        }
    }

    /// The kind whose collection path segment is `segment`.
    pub fn from_collection(segment: &str) -> Option<Kind> {
        Kind::ROUTED.into_iter().find(|k| k.collection() == segment)
    }

    /// Singular name for messages: `api`, `product`, ..., `named value`, `policy fragment`, `gateway`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Product => "product",
            Kind::Subscription => "subscription",
            Kind::User => "user",
            Kind::Backend => "backend",
            Kind::NamedValue => "named value",
            Kind::Fragment => "policy fragment",
            Kind::Gateway => "gateway",
            Kind::Certificate => "certificate",
            Kind::CaCertificate => "CA certificate",
            Kind::Hostname => "hostname",
            Kind::VersionSet => "version set",
        }
    }
}

/// One stored entity as the REST API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The id (a named value's name).
    pub id: String,
    /// The body, redacted for output: subscription keys omitted, secret named values `null`.
    pub body: serde_json::Value,
    /// The revision at which it was last written: its ETag.
    pub version: u64,
}

/// What a PUT did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The entity as the response shows it. On create only, a subscription's keys and a
    /// secret named value's value are included (they are never shown again).
    pub entity: Entity,
    /// Whether the entity did not exist before (201) or was replaced (200).
    pub created: bool,
}

/// An `If-Match` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `If-Match: *`: the target must exist.
    Any,
    /// `If-Match: "<version>"`: the target must exist at exactly this version.
    Version(u64),
}

/// The conditional-request headers of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Precondition {
    /// `If-Match`, if given; a mismatch is [`StoreError::PreconditionFailed`](super::StoreError::PreconditionFailed).
    pub if_match: Option<IfMatch>,
    /// `If-None-Match: *`: the target must not exist yet.
    pub if_none_match_any: bool,
}

impl Precondition {
    /// No condition: the write goes ahead whatever the current version.
    pub const NONE: Precondition = Precondition {
        if_match: None,
        if_none_match_any: false,
    };
}

/// Where a policy document is attached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyScope {
    /// The global document (APIM's "All APIs").
    Global,
    /// A product's document.
    Product(String),
    /// An API's document.
    Api(String),
    /// An operation's document: API id, operation id.
    Operation(String, String),
}

/// A policy document and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDoc {
    /// The XML as stored.
    pub xml: String,
    /// The version of the owning entity (for the global document, of the document itself).
    pub version: u64,
}

/// Which of two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyType {
    /// The primary key.
    Primary,
    /// The secondary key.
    Secondary,
}

/// A subscription's two keys (`{"primaryKey", "secondaryKey"}`).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionKeys {
    /// The primary key.
    pub primary_key: String,
    /// The secondary key.
    pub secondary_key: String,
}

impl std::fmt::Debug for SubscriptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionKeys(<redacted>)")
    }
}

/// A gateway's two keys (`{"primary", "secondary"}`).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct GatewayKeys {
    /// The primary key.
    pub primary: String,
    /// The secondary key.
    pub secondary: String,
}

impl std::fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayKeys(<redacted>)")
    }
}

/// A gateway token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayToken {
    /// `GatewayKey <id>&<expiry>&<signature>`.
    pub value: String,
    /// Expiry, Unix seconds.
    pub expiry_unix: u64,
}

/// The configuration one gateway serves, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The store's revision: the snapshot's `revision` field.
    pub revision: u64,
    /// The store identity and content digest the snapshot carries, with the revision.
    pub id: portcullis_core::sync::ContentId,
    /// The Snapshot JSON.
    pub json: Bytes,
}

impl GatewayConfig {
    /// The ETag, quotes included: `"<revision>-<digest>"`.
    pub fn etag(&self) -> String {
        self.id.etag()
    }
}

/// What a gateway instance reports every 60 s (unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// Stable id of the gateway process.
    pub instance_id: String,
    /// Host it runs on.
    #[serde(default)]
    pub hostname: String,
    /// Portcullis version.
    #[serde(default)]
    pub version: String,
    /// Revision of the configuration it serves, if any.
    #[serde(default)]
    pub applied_revision: Option<u64>,
    /// Content digest of the configuration it serves, if known.
    #[serde(default)]
    pub applied_digest: Option<String>,
    /// Store identity of the configuration it serves, if known.
    #[serde(default)]
    pub store_id: Option<String>,
    /// Seconds since it started.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// `healthy`, `degraded` or `notReady`.
    #[serde(default)]
    pub health: String,
    /// `connected`, `disconnected` or `starting`.
    #[serde(default)]
    pub connectivity: String,
    /// Why the last fetched snapshot was not applied, if it was not.
    #[serde(default)]
    pub compile_errors: Vec<String>,
    /// `none`, `saved`, `loaded` or `error: ...`.
    #[serde(default)]
    pub backup: String,
    /// When the instance's gateway token expires, Unix seconds (gateways that
    /// renew their token send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expiry: Option<u64>,
    /// The instance's shared-state store (Redis): target (password hidden),
    /// counting, on failure, health, errors, last error, p99 latency; absent
    /// for an in-process store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_store: Option<StateStoreHealth>,
}

/// One instance in a gateway's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Its last heartbeat.
    pub heartbeat: Heartbeat,
    /// When that arrived, Unix seconds.
    pub last_heartbeat_unix: u64,
    /// Whether it arrived within [`ONLINE_WINDOW_SECS`](super::ONLINE_WINDOW_SECS).
    pub online: bool,
}

/// The instances of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// The gateway's id.
    pub gateway_id: String,
    /// Its instances, by instance id.
    pub instances: Vec<InstanceStatus>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The revision the change produced.
    pub revision: u64,
    /// When, Unix seconds.
    pub at_unix: u64,
    /// Who: the actor passed to the write.
    pub actor: String,
    /// What: `create`, `replace`, `delete`, `regenerate-primary-key`, `suspend`, ...
    pub action: String,
    /// Which resource: `/apis/echo`, `/apis/echo/operations/get/policy`, `/policy`, ...
    pub resource: String,
    /// More about it (never a secret), if anything.
    pub detail: Option<String>,
}
