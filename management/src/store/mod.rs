//! The management plane's store: entities, policies, gateways and the audit log in SQLite.
//!
//! One [`Store`] owns one data directory (`<dir>/portcullis.db`). It is synchronous
//! (rusqlite); the HTTP layer keeps it behind a mutex or calls it from blocking tasks.
//! Every accepted change is one SQLite transaction that compiles the whole candidate
//! configuration first, writes the entity, bumps the single revision counter and
//! appends an audit entry. Time is an argument (`now_unix`, Unix seconds) so tests
//! control it.

use std::path::Path;

use bytes::Bytes;
use portcullis_core::config::SubscriptionState;
use serde::{Deserialize, Serialize};

mod error;

pub use error::StoreError;

/// How long a gateway instance counts as online after its last heartbeat: 3 × 60 s.
pub const ONLINE_WINDOW_SECS: u64 = 180;

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
        }
    }

    /// The kind whose collection path segment is `segment`.
    pub fn from_collection(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.collection() == segment)
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
    /// `If-Match`, if given; a mismatch is [`StoreError::PreconditionFailed`].
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
    /// The store's revision: the snapshot's `revision` field and the ETag.
    pub revision: u64,
    /// The Snapshot JSON.
    pub json: Bytes,
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
}

/// One instance in a gateway's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Its last heartbeat.
    pub heartbeat: Heartbeat,
    /// When that arrived, Unix seconds.
    pub last_heartbeat_unix: u64,
    /// Whether it arrived within [`ONLINE_WINDOW_SECS`].
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

/// The management plane's persistent state.
pub struct Store {
    _private: (),
}

impl Store {
    /// Opens (creating the directory and database if needed) `<dir>/portcullis.db` and migrates it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let _ = dir;
        unimplemented!()
    }

    /// The current revision (0 before the first change).
    pub fn revision(&self) -> u64 {
        unimplemented!()
    }

    /// One entity, redacted for output.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Entity, StoreError> {
        let _ = (kind, id);
        unimplemented!()
    }

    /// A page of entities ordered by id, and how many there are in all.
    pub fn list(
        &self,
        kind: Kind,
        skip: usize,
        top: usize,
    ) -> Result<(Vec<Entity>, usize), StoreError> {
        let _ = (kind, skip, top);
        unimplemented!()
    }

    /// Creates or replaces an entity from its JSON body (an `id`/`name` in it must match `id`).
    pub fn put(
        &mut self,
        kind: Kind,
        id: &str,
        body: serde_json::Value,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<Written, StoreError> {
        let _ = (kind, id, body, precondition, actor, now_unix);
        unimplemented!()
    }

    /// Deletes an entity; one that is still referenced is a [`StoreError::Conflict`].
    pub fn delete(
        &mut self,
        kind: Kind,
        id: &str,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let _ = (kind, id, precondition, actor, now_unix);
        unimplemented!()
    }

    /// A policy document; [`StoreError::NotFound`] if the owner or the document does not exist.
    pub fn get_policy(&self, scope: &PolicyScope) -> Result<PolicyDoc, StoreError> {
        let _ = scope;
        unimplemented!()
    }

    /// Sets a policy document; returns it and whether it is new (201) or replaced (200).
    pub fn put_policy(
        &mut self,
        scope: &PolicyScope,
        xml: &str,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<(PolicyDoc, bool), StoreError> {
        let _ = (scope, xml, precondition, actor, now_unix);
        unimplemented!()
    }

    /// Removes a policy document.
    pub fn delete_policy(
        &mut self,
        scope: &PolicyScope,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let _ = (scope, precondition, actor, now_unix);
        unimplemented!()
    }

    /// A subscription's keys.
    pub fn subscription_secrets(&self, id: &str) -> Result<SubscriptionKeys, StoreError> {
        let _ = id;
        unimplemented!()
    }

    /// Replaces one of a subscription's keys with a new random one; returns both keys.
    pub fn regenerate_subscription_key(
        &mut self,
        id: &str,
        which: KeyType,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<SubscriptionKeys, StoreError> {
        let _ = (id, which, precondition, actor, now_unix);
        unimplemented!()
    }

    /// Suspends, activates or cancels a subscription; returns it as GET shows it.
    pub fn set_subscription_state(
        &mut self,
        id: &str,
        state: SubscriptionState,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<Entity, StoreError> {
        let _ = (id, state, precondition, actor, now_unix);
        unimplemented!()
    }

    /// A gateway's keys.
    pub fn gateway_keys(&self, id: &str) -> Result<GatewayKeys, StoreError> {
        let _ = id;
        unimplemented!()
    }

    /// Replaces one of a gateway's keys; tokens signed with the old one stop working.
    pub fn regenerate_gateway_key(
        &mut self,
        id: &str,
        which: KeyType,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<GatewayKeys, StoreError> {
        let _ = (id, which, precondition, actor, now_unix);
        unimplemented!()
    }

    /// Signs a token for a gateway with one of its keys; the expiry defaults to 30 days
    /// and must be in the future and at most 30 days away ([`StoreError::Invalid`]).
    pub fn gateway_token(
        &self,
        id: &str,
        which: KeyType,
        expiry_unix: Option<u64>,
        now_unix: u64,
    ) -> Result<GatewayToken, StoreError> {
        let _ = (id, which, expiry_unix, now_unix);
        unimplemented!()
    }

    /// Checks an `Authorization` header value (`GatewayKey ...`) for `gateway_id`:
    /// [`StoreError::Unauthorized`] for a malformed, expired or forged token or one for
    /// another gateway, [`StoreError::NotFound`] for an unknown gateway.
    pub fn verify_gateway_token(
        &self,
        header_value: &str,
        gateway_id: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let _ = (header_value, gateway_id, now_unix);
        unimplemented!()
    }

    /// The Snapshot JSON of exactly what a gateway serves, at the current revision.
    pub fn gateway_config(&self, gateway_id: &str) -> Result<GatewayConfig, StoreError> {
        let _ = gateway_id;
        unimplemented!()
    }

    /// Records a heartbeat of one of a gateway's instances (does not bump the revision).
    pub fn record_heartbeat(
        &mut self,
        gateway_id: &str,
        heartbeat: &Heartbeat,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let _ = (gateway_id, heartbeat, now_unix);
        unimplemented!()
    }

    /// The instances of a gateway with their last heartbeat and whether they are online.
    pub fn gateway_status(
        &self,
        gateway_id: &str,
        now_unix: u64,
    ) -> Result<GatewayStatus, StoreError> {
        let _ = (gateway_id, now_unix);
        unimplemented!()
    }

    /// A page of the audit log, newest first, and how many entries there are in all.
    pub fn audit(&self, skip: usize, top: usize) -> Result<(Vec<AuditEntry>, usize), StoreError> {
        let _ = (skip, top);
        unimplemented!()
    }

    /// Sets up admin authentication. With `from_env`, that token is the only one accepted
    /// (nothing is stored). Without it, the stored tokens are accepted and, if there are
    /// none, one is created and returned (print it once: only its digest is kept).
    pub fn ensure_admin_token(
        &mut self,
        from_env: Option<&str>,
        now_unix: u64,
    ) -> Result<Option<String>, StoreError> {
        let _ = (from_env, now_unix);
        unimplemented!()
    }

    /// Whether `token` is an accepted admin token (SHA-256 digests compared in constant time).
    pub fn check_admin_token(&self, token: &str) -> bool {
        let _ = token;
        unimplemented!()
    }
}
