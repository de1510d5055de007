//! The management plane's store: entities, policies, gateways and the audit log in SQLite.
//!
//! One [`Store`] owns one data directory (`<dir>/portcullis.db`). It is synchronous
//! (rusqlite); the HTTP layer keeps it behind a mutex or calls it from blocking tasks.
//! Every accepted change is one SQLite transaction that compiles the whole candidate
//! configuration first, writes the entity, bumps the single revision counter and
//! appends an audit entry. Time is an argument (`now_unix`, Unix seconds) so tests
//! control it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use portcullis_core::config::{Api, CompiledConfig, SubscriptionState};
use portcullis_core::sync::token;
use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

mod db;
mod docs;
mod error;
mod fragment;
mod secrets;
mod state;
#[cfg(test)]
mod tests;

use docs::{Doc, SubscriptionDoc};
use state::{State, Stored};

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
///
/// Reads are served from an in-memory view loaded at open; writes go to SQLite first
/// and replace the view only once committed. One `Store` per data directory (the
/// database is opened in exclusive locking mode).
pub struct Store {
    conn: Connection,
    state: State,
    admin: Vec<[u8; 32]>,
    configs: Mutex<HashMap<String, GatewayConfig>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("revision", &self.state.revision)
            .finish_non_exhaustive()
    }
}

/// A row to write in a change's transaction; its new value is read from the candidate state.
enum Row {
    /// An entity: upserted if the candidate has it, deleted otherwise.
    Entity(Kind, String),
    /// The global policy document.
    GlobalPolicy,
    /// A gateway's keys: upserted, or deleted with its instances.
    GatewayKeys(String),
}

/// The audit entry a change appends.
struct AuditNote {
    action: String,
    resource: String,
    detail: Option<String>,
}

impl Store {
    /// Opens (creating the directory and database if needed) `<dir>/portcullis.db` and migrates it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let conn = db::open(dir)?;
        let mut state = State {
            revision: db::revision(&conn)?,
            ..State::default()
        };
        for (kind, id, body, version) in db::entity_rows(&conn)? {
            let kind = docs::kind_from_table(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown entity kind `{kind}`")))?;
            let doc = Doc::from_stored(kind, &body)?;
            state.put(doc, &id, version);
        }
        state.global_policy =
            db::global_policy(&conn)?.map(|(xml, version)| PolicyDoc { xml, version });
        for (id, primary, secondary) in db::gateway_key_rows(&conn)? {
            state
                .gateway_keys
                .insert(id, GatewayKeys { primary, secondary });
        }
        let admin = db::admin_digests(&conn)?;
        tracing::info!(
            path = %dir.join(db::FILE_NAME).display(),
            revision = state.revision,
            "store opened"
        );
        Ok(Store {
            conn,
            state,
            admin,
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The current revision (0 before the first change).
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// One entity, redacted for output.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Entity, StoreError> {
        let stored = self
            .state
            .get(kind, id)
            .ok_or_else(|| StoreError::NotFound(describe(kind, id)))?;
        Ok(entity(id, stored))
    }

    /// A page of entities ordered by id, and how many there are in all.
    pub fn list(
        &self,
        kind: Kind,
        skip: usize,
        top: usize,
    ) -> Result<(Vec<Entity>, usize), StoreError> {
        let page = self
            .state
            .all(kind)
            .skip(skip)
            .take(top)
            .map(|(id, stored)| entity(id, stored))
            .collect();
        Ok((page, self.state.count(kind)))
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
        docs::check_id(kind, id)?;
        let what = describe(kind, id);
        let existing = self.state.get(kind, id).cloned();
        check_precondition(existing.as_ref().map(|s| s.version), precondition, &what)?;
        let doc = Doc::from_request(kind, id, body, existing.as_ref().map(|s| &*s.doc))?;
        self.check_references(&doc, &what)?;
        let created = existing.is_none();
        // The create response is the only one that shows generated keys and secret values.
        let body = if created {
            doc.to_stored()
        } else {
            doc.to_output()
        };
        let note = AuditNote {
            action: if created { "create" } else { "replace" }.to_owned(),
            resource: resource(kind, id),
            detail: Some(doc.to_audit()),
        };
        let mut next = self.begin();
        let mut rows = vec![Row::Entity(kind, id.to_owned())];
        if kind == Kind::Gateway && created {
            let keys = GatewayKeys {
                primary: secrets::random_hex(32)?,
                secondary: secrets::random_hex(32)?,
            };
            next.gateway_keys.insert(id.to_owned(), keys);
            rows.push(Row::GatewayKeys(id.to_owned()));
        }
        let version = next.revision;
        next.put(doc, id, version);
        if kind == Kind::Fragment {
            fragment::check(&next, id)?;
        }
        self.commit(next, &rows, check_for(kind, id), note, actor, now_unix)?;
        Ok(Written {
            entity: Entity {
                id: id.to_owned(),
                body,
                version,
            },
            created,
        })
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
        let what = describe(kind, id);
        let existing = self
            .state
            .get(kind, id)
            .ok_or_else(|| StoreError::NotFound(what.clone()))?;
        check_precondition(Some(existing.version), precondition, &what)?;
        let referrers = self.state.referrers(kind, id);
        if !referrers.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{what} is still used by {}",
                referrers.join(", ")
            )));
        }
        let mut next = self.begin();
        next.remove(kind, id);
        let mut rows = vec![Row::Entity(kind, id.to_owned())];
        if kind == Kind::Gateway {
            next.gateway_keys.remove(id);
            rows.push(Row::GatewayKeys(id.to_owned()));
        }
        let note = AuditNote {
            action: "delete".to_owned(),
            resource: resource(kind, id),
            detail: None,
        };
        // Removing an API cannot break another one's documents; removing a named value
        // or fragment can break any.
        let check = match kind {
            Kind::Api => Check::Structure,
            other => check_for(other, id),
        };
        self.commit(next, &rows, check, note, actor, now_unix)
            .map_err(|e| match e {
                // Whatever still needs it (a policy naming a fragment or `{{value}}`)
                // no longer compiles without it.
                StoreError::Config(err) => {
                    StoreError::Conflict(format!("{what} is still used: {err}"))
                }
                other => other,
            })?;
        Ok(())
    }

    /// A policy document; [`StoreError::NotFound`] if the owner or the document does not exist.
    pub fn get_policy(&self, scope: &PolicyScope) -> Result<PolicyDoc, StoreError> {
        let (version, xml) = policy_slot(&self.state, scope)?;
        match xml {
            Some(xml) => Ok(PolicyDoc { xml, version }),
            None => Err(StoreError::NotFound(format!(
                "policy of {}",
                scope_name(scope)
            ))),
        }
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
        let (version, current) = policy_slot(&self.state, scope)?;
        let what = format!("policy of {}", scope_name(scope));
        check_precondition(current.is_some().then_some(version), precondition, &what)?;
        let created = current.is_none();
        let mut next = self.begin();
        let row = set_policy(&mut next, scope, Some(xml.to_owned()))?;
        let note = AuditNote {
            action: if created { "create" } else { "replace" }.to_owned(),
            resource: policy_resource(scope),
            detail: Some(format!("{} bytes", xml.len())),
        };
        let revision = next.revision;
        self.commit(next, &[row], policy_check(scope), note, actor, now_unix)?;
        Ok((
            PolicyDoc {
                xml: xml.to_owned(),
                version: revision,
            },
            created,
        ))
    }

    /// Removes a policy document.
    pub fn delete_policy(
        &mut self,
        scope: &PolicyScope,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let (version, current) = policy_slot(&self.state, scope)?;
        let what = format!("policy of {}", scope_name(scope));
        if current.is_none() {
            return Err(StoreError::NotFound(what));
        }
        check_precondition(Some(version), precondition, &what)?;
        let mut next = self.begin();
        let row = set_policy(&mut next, scope, None)?;
        let note = AuditNote {
            action: "delete".to_owned(),
            resource: policy_resource(scope),
            detail: None,
        };
        self.commit(next, &[row], policy_check(scope), note, actor, now_unix)?;
        Ok(())
    }

    /// A subscription's keys.
    pub fn subscription_secrets(&self, id: &str) -> Result<SubscriptionKeys, StoreError> {
        let (_, sub) = self.subscription(id)?;
        Ok(SubscriptionKeys {
            primary_key: sub.primary_key,
            secondary_key: sub.secondary_key,
        })
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
        let (version, mut sub) = self.subscription(id)?;
        check_precondition(
            Some(version),
            precondition,
            &describe(Kind::Subscription, id),
        )?;
        let key = secrets::random_hex(32)?;
        match which {
            KeyType::Primary => sub.primary_key = key,
            KeyType::Secondary => sub.secondary_key = key,
        }
        let keys = SubscriptionKeys {
            primary_key: sub.primary_key.clone(),
            secondary_key: sub.secondary_key.clone(),
        };
        let note = AuditNote {
            action: format!("regenerate-{}-key", key_name(which)),
            resource: resource(Kind::Subscription, id),
            detail: None,
        };
        let mut next = self.begin();
        let version = next.revision;
        next.put(Doc::Subscription(sub), id, version);
        let rows = [Row::Entity(Kind::Subscription, id.to_owned())];
        self.commit(next, &rows, Check::Structure, note, actor, now_unix)?;
        Ok(keys)
    }

    /// Suspends, activates or cancels a subscription; returns it as GET shows it.
    /// A cancelled subscription stays cancelled ([`StoreError::Conflict`]).
    pub fn set_subscription_state(
        &mut self,
        id: &str,
        state: SubscriptionState,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<Entity, StoreError> {
        let what = describe(Kind::Subscription, id);
        let (version, mut sub) = self.subscription(id)?;
        check_precondition(Some(version), precondition, &what)?;
        if sub.state == state {
            return self.get(Kind::Subscription, id);
        }
        if sub.state == SubscriptionState::Cancelled {
            return Err(StoreError::Conflict(format!("{what} is cancelled")));
        }
        sub.state = state;
        let action = match state {
            SubscriptionState::Active => "activate",
            SubscriptionState::Suspended => "suspend",
            SubscriptionState::Cancelled => "cancel",
            _ => "set-state",
        };
        let doc = Doc::Subscription(sub);
        let note = AuditNote {
            action: action.to_owned(),
            resource: resource(Kind::Subscription, id),
            detail: Some(doc.to_audit()),
        };
        let mut next = self.begin();
        let version = next.revision;
        next.put(doc, id, version);
        let rows = [Row::Entity(Kind::Subscription, id.to_owned())];
        self.commit(next, &rows, Check::Structure, note, actor, now_unix)?;
        self.get(Kind::Subscription, id)
    }

    /// A gateway's keys.
    pub fn gateway_keys(&self, id: &str) -> Result<GatewayKeys, StoreError> {
        self.state
            .gateway_keys
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(describe(Kind::Gateway, id)))
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
        let what = describe(Kind::Gateway, id);
        let gateway = self
            .state
            .get(Kind::Gateway, id)
            .ok_or_else(|| StoreError::NotFound(what.clone()))?;
        check_precondition(Some(gateway.version), precondition, &what)?;
        let mut keys = self.gateway_keys(id)?;
        let key = secrets::random_hex(32)?;
        match which {
            KeyType::Primary => keys.primary = key,
            KeyType::Secondary => keys.secondary = key,
        }
        let mut next = self.begin();
        next.gateway_keys.insert(id.to_owned(), keys.clone());
        let note = AuditNote {
            action: format!("regenerate-{}-key", key_name(which)),
            resource: resource(Kind::Gateway, id),
            detail: None,
        };
        self.commit(
            next,
            &[Row::GatewayKeys(id.to_owned())],
            Check::Skip,
            note,
            actor,
            now_unix,
        )?;
        Ok(keys)
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
        let keys = self.gateway_keys(id)?;
        let latest = now_unix.saturating_add(token::MAX_LIFETIME_SECS);
        let expiry = expiry_unix.unwrap_or(latest);
        if expiry <= now_unix {
            return Err(StoreError::Invalid(
                "the token expiry must be in the future".to_owned(),
            ));
        }
        if expiry > latest {
            return Err(StoreError::Invalid(
                "the token expiry must be at most 30 days away".to_owned(),
            ));
        }
        let key = match which {
            KeyType::Primary => &keys.primary,
            KeyType::Secondary => &keys.secondary,
        };
        Ok(GatewayToken {
            value: token::sign(id, expiry, key.as_bytes()),
            expiry_unix: expiry,
        })
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
        let parsed =
            token::parse(header_value).map_err(|e| StoreError::Unauthorized(e.to_string()))?;
        if parsed.gateway_id != gateway_id {
            return Err(StoreError::Unauthorized(
                "the gateway token is for another gateway".to_owned(),
            ));
        }
        let keys = self.gateway_keys(gateway_id)?;
        parsed
            .verify(
                &[keys.primary.as_bytes(), keys.secondary.as_bytes()],
                now_unix,
            )
            .map_err(|e| StoreError::Unauthorized(e.to_string()))
    }

    /// The Snapshot JSON of exactly what a gateway serves, at the current revision.
    pub fn gateway_config(&self, gateway_id: &str) -> Result<GatewayConfig, StoreError> {
        let stored = self
            .state
            .get(Kind::Gateway, gateway_id)
            .ok_or_else(|| StoreError::NotFound(describe(Kind::Gateway, gateway_id)))?;
        let Doc::Gateway(gateway) = &*stored.doc else {
            return Err(StoreError::Corrupt(format!("gateway `{gateway_id}`")));
        };
        let mut cache = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = cache.get(gateway_id) {
            if config.revision == self.state.revision {
                return Ok(config.clone());
            }
        }
        let snapshot = self.state.gateway_snapshot(gateway);
        let config = GatewayConfig {
            revision: snapshot.revision,
            json: Bytes::from(snapshot.to_json()),
        };
        cache.insert(gateway_id.to_owned(), config.clone());
        Ok(config)
    }

    /// Records a heartbeat of one of a gateway's instances (does not bump the revision).
    /// Instances silent for [`INSTANCE_RETENTION_SECS`] are forgotten.
    pub fn record_heartbeat(
        &mut self,
        gateway_id: &str,
        heartbeat: &Heartbeat,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        if self.state.get(Kind::Gateway, gateway_id).is_none() {
            return Err(StoreError::NotFound(describe(Kind::Gateway, gateway_id)));
        }
        if heartbeat.instance_id.is_empty() || heartbeat.instance_id.len() > 256 {
            return Err(StoreError::Invalid(
                "instanceId must have 1 to 256 characters".to_owned(),
            ));
        }
        let json = serde_json::to_string(heartbeat)
            .map_err(|e| StoreError::Invalid(format!("heartbeat: {e}")))?;
        let now = db::to_i64(now_unix)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO instances (gateway_id, instance_id, heartbeat, last_heartbeat)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (gateway_id, instance_id)
             DO UPDATE SET heartbeat = excluded.heartbeat, last_heartbeat = excluded.last_heartbeat",
            params![gateway_id, heartbeat.instance_id, json, now],
        )?;
        let cutoff = db::to_i64(now_unix.saturating_sub(INSTANCE_RETENTION_SECS))?;
        tx.execute(
            "DELETE FROM instances WHERE gateway_id = ?1 AND last_heartbeat < ?2",
            params![gateway_id, cutoff],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The instances of a gateway with their last heartbeat and whether they are online.
    pub fn gateway_status(
        &self,
        gateway_id: &str,
        now_unix: u64,
    ) -> Result<GatewayStatus, StoreError> {
        if self.state.get(Kind::Gateway, gateway_id).is_none() {
            return Err(StoreError::NotFound(describe(Kind::Gateway, gateway_id)));
        }
        let mut stmt = self.conn.prepare(
            "SELECT heartbeat, last_heartbeat FROM instances
             WHERE gateway_id = ?1 ORDER BY instance_id",
        )?;
        let rows = stmt.query_map([gateway_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut instances = Vec::new();
        for row in rows {
            let (json, last) = row?;
            let heartbeat: Heartbeat = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("stored heartbeat: {e}")))?;
            let last = db::to_u64(last)?;
            instances.push(InstanceStatus {
                heartbeat,
                last_heartbeat_unix: last,
                online: now_unix.saturating_sub(last) <= ONLINE_WINDOW_SECS,
            });
        }
        Ok(GatewayStatus {
            gateway_id: gateway_id.to_owned(),
            instances,
        })
    }

    /// A page of the audit log, newest first, and how many entries there are in all.
    pub fn audit(&self, skip: usize, top: usize) -> Result<(Vec<AuditEntry>, usize), StoreError> {
        let total: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))?;
        let mut stmt = self.conn.prepare(
            "SELECT revision, at, actor, action, resource, detail FROM audit
             ORDER BY revision DESC LIMIT ?1 OFFSET ?2",
        )?;
        let limit = i64::try_from(top).unwrap_or(i64::MAX);
        let offset = i64::try_from(skip).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![limit, offset], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (revision, at, actor, action, resource, detail) = row?;
            entries.push(AuditEntry {
                revision: db::to_u64(revision)?,
                at_unix: db::to_u64(at)?,
                actor,
                action,
                resource,
                detail,
            });
        }
        Ok((entries, usize::try_from(total).unwrap_or(0)))
    }

    /// Sets up admin authentication. With `from_env`, that token is the only one accepted
    /// (nothing is stored; at least 16 characters). Without it, the stored tokens are
    /// accepted and, if there are none, one is created and returned (print it once:
    /// only its SHA-256 digest is kept).
    pub fn ensure_admin_token(
        &mut self,
        from_env: Option<&str>,
        now_unix: u64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(token) = from_env {
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(StoreError::Invalid(
                    "the admin token must have at least 16 characters and no spaces".to_owned(),
                ));
            }
            self.admin = vec![secrets::digest(token)];
            return Ok(None);
        }
        let stored = db::admin_digests(&self.conn)?;
        if !stored.is_empty() {
            self.admin = stored;
            return Ok(None);
        }
        let token = secrets::random_hex(32)?;
        let digest = secrets::digest(&token);
        self.conn.execute(
            "INSERT INTO admin_tokens (digest, created_at) VALUES (?1, ?2)",
            params![digest.as_slice(), db::to_i64(now_unix)?],
        )?;
        self.admin = vec![digest];
        Ok(Some(token))
    }

    /// Whether `token` is an accepted admin token (SHA-256 digests compared in constant time).
    pub fn check_admin_token(&self, token: &str) -> bool {
        secrets::matches_any(token, &self.admin)
    }

    /// The candidate state of the next change: a copy of the current one at the next revision.
    fn begin(&self) -> State {
        let mut next = self.state.clone();
        next.revision += 1;
        next
    }

    /// Compiles the candidate (if the change can affect gateways), stores the changed
    /// rows, the revision and the audit entry in one transaction, then makes the
    /// candidate the live view.
    fn commit(
        &mut self,
        next: State,
        rows: &[Row],
        check: Check<'_>,
        note: AuditNote,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let snapshot = match check {
            Check::Skip => None,
            Check::Full => Some(next.candidate_snapshot(|_| true)),
            Check::Api(changed) => Some(next.candidate_snapshot(|api| api == changed)),
            Check::Structure => Some(next.candidate_snapshot(|_| false)),
        };
        if let Some(snapshot) = snapshot {
            CompiledConfig::compile(snapshot)?;
        }
        let revision = db::to_i64(next.revision)?;
        let now = db::to_i64(now_unix)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for row in rows {
            match row {
                Row::Entity(kind, id) => match next.get(*kind, id) {
                    Some(stored) => {
                        tx.execute(
                            "INSERT INTO entities (kind, id, body, version, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                             ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body,
                                 version = excluded.version, updated_at = excluded.updated_at",
                            params![
                                docs::table_kind(*kind),
                                id,
                                stored.doc.to_stored().to_string(),
                                db::to_i64(stored.version)?,
                                now
                            ],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM entities WHERE kind = ?1 AND id = ?2",
                            params![docs::table_kind(*kind), id],
                        )?;
                    }
                },
                Row::GlobalPolicy => match &next.global_policy {
                    Some(policy) => {
                        tx.execute(
                            "INSERT INTO global_policy (id, xml, version) VALUES (1, ?1, ?2)
                             ON CONFLICT (id) DO UPDATE SET xml = excluded.xml,
                                 version = excluded.version",
                            params![policy.xml, db::to_i64(policy.version)?],
                        )?;
                    }
                    None => {
                        tx.execute("DELETE FROM global_policy", [])?;
                    }
                },
                Row::GatewayKeys(id) => match next.gateway_keys.get(id) {
                    Some(keys) => {
                        tx.execute(
                            "INSERT INTO gateway_keys (gateway_id, primary_key, secondary_key)
                             VALUES (?1, ?2, ?3)
                             ON CONFLICT (gateway_id) DO UPDATE SET
                                 primary_key = excluded.primary_key,
                                 secondary_key = excluded.secondary_key",
                            params![id, keys.primary, keys.secondary],
                        )?;
                    }
                    None => {
                        tx.execute("DELETE FROM gateway_keys WHERE gateway_id = ?1", [id])?;
                        tx.execute("DELETE FROM instances WHERE gateway_id = ?1", [id])?;
                    }
                },
            }
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'revision'",
            [revision],
        )?;
        tx.execute(
            "INSERT INTO audit (revision, at, actor, action, resource, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                revision,
                now,
                actor,
                note.action,
                note.resource,
                note.detail
            ],
        )?;
        tx.commit()?;
        tracing::info!(
            revision = next.revision,
            actor,
            action = %note.action,
            resource = %note.resource,
            "configuration changed"
        );
        self.state = next;
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// A subscription and its version.
    fn subscription(&self, id: &str) -> Result<(u64, SubscriptionDoc), StoreError> {
        match self.state.get(Kind::Subscription, id) {
            Some(stored) => match &*stored.doc {
                Doc::Subscription(sub) => Ok((stored.version, sub.clone())),
                _ => Err(StoreError::Corrupt(format!("subscription `{id}`"))),
            },
            None => Err(StoreError::NotFound(describe(Kind::Subscription, id))),
        }
    }

    /// Checks what the compiler does not: a gateway's APIs and a subscription's owner exist.
    fn check_references(&self, doc: &Doc, what: &str) -> Result<(), StoreError> {
        match doc {
            Doc::Gateway(gateway) => {
                let mut seen = std::collections::HashSet::new();
                for api in &gateway.apis {
                    if !seen.insert(api.as_str()) {
                        return Err(StoreError::Invalid(format!(
                            "{what}: api '{api}' is listed twice"
                        )));
                    }
                    if self.state.get(Kind::Api, api).is_none() {
                        return Err(StoreError::Invalid(format!("{what}: unknown api '{api}'")));
                    }
                }
            }
            Doc::Subscription(sub) => {
                if let Some(owner) = &sub.owner_id {
                    let user = state::owner_user(owner);
                    if self.state.get(Kind::User, user).is_none() {
                        return Err(StoreError::Invalid(format!(
                            "{what}: ownerId '{owner}' is not a user"
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// How long an instance that stopped sending heartbeats stays in its gateway's status: 7 days.
pub const INSTANCE_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// What a change's candidate configuration is compiled with.
///
/// Every write compiles the whole candidate (paths, hosts, keys, products, every
/// reference), but an API's policy documents depend only on the API itself and on the
/// named values and fragments: documents of APIs that neither changed nor can be
/// broken by the change compiled before and are left out, so a write costs a compile
/// of the documents it touches, not of all 1,000 APIs' documents.
#[derive(Debug, Clone, Copy)]
enum Check<'a> {
    /// Nothing gateways serve changed (users, gateways, gateway keys).
    Skip,
    /// Named values, fragments or the global policy: every document.
    Full,
    /// One API changed: its documents, the products' and the global one.
    Api(&'a str),
    /// No API document can be affected: the products' and the global document.
    Structure,
}

/// The check for a PUT of `kind` / `id`.
fn check_for(kind: Kind, id: &str) -> Check<'_> {
    match kind {
        Kind::User | Kind::Gateway => Check::Skip,
        Kind::NamedValue | Kind::Fragment => Check::Full,
        Kind::Api => Check::Api(id),
        Kind::Product | Kind::Subscription | Kind::Backend => Check::Structure,
    }
}

/// The check for a change to the policy document at `scope`.
fn policy_check(scope: &PolicyScope) -> Check<'_> {
    match scope {
        PolicyScope::Global => Check::Full,
        PolicyScope::Product(_) => Check::Structure,
        PolicyScope::Api(api) | PolicyScope::Operation(api, _) => Check::Api(api),
    }
}

fn entity(id: &str, stored: &Stored) -> Entity {
    Entity {
        id: id.to_owned(),
        body: stored.doc.to_output(),
        version: stored.version,
    }
}

/// `api 'echo'`, for messages.
fn describe(kind: Kind, id: &str) -> String {
    format!("{} '{id}'", kind.noun())
}

/// `/apis/echo`, for the audit log.
fn resource(kind: Kind, id: &str) -> String {
    format!("/{}/{id}", kind.collection())
}

fn key_name(which: KeyType) -> &'static str {
    match which {
        KeyType::Primary => "primary",
        KeyType::Secondary => "secondary",
    }
}

fn scope_name(scope: &PolicyScope) -> String {
    match scope {
        PolicyScope::Global => "the global scope".to_owned(),
        PolicyScope::Product(p) => format!("product '{p}'"),
        PolicyScope::Api(a) => format!("api '{a}'"),
        PolicyScope::Operation(a, o) => format!("api '{a}' operation '{o}'"),
    }
}

fn policy_resource(scope: &PolicyScope) -> String {
    match scope {
        PolicyScope::Global => "/policy".to_owned(),
        PolicyScope::Product(p) => format!("/products/{p}/policy"),
        PolicyScope::Api(a) => format!("/apis/{a}/policy"),
        PolicyScope::Operation(a, o) => format!("/apis/{a}/operations/{o}/policy"),
    }
}

/// The version a policy's precondition is checked against (the owner's, or the global
/// document's) and the document, if set; [`StoreError::NotFound`] for an unknown owner.
fn policy_slot(state: &State, scope: &PolicyScope) -> Result<(u64, Option<String>), StoreError> {
    match scope {
        PolicyScope::Global => Ok(match &state.global_policy {
            Some(p) => (p.version, Some(p.xml.clone())),
            None => (0, None),
        }),
        PolicyScope::Product(id) => {
            let stored = state
                .get(Kind::Product, id)
                .ok_or_else(|| StoreError::NotFound(describe(Kind::Product, id)))?;
            match &*stored.doc {
                Doc::Product(p) => Ok((stored.version, p.policy.clone())),
                _ => Err(StoreError::Corrupt(format!("product `{id}`"))),
            }
        }
        PolicyScope::Api(id) => {
            let (version, api) = api_of(state, id)?;
            Ok((version, api.policy.clone()))
        }
        PolicyScope::Operation(api_id, op) => {
            let (version, api) = api_of(state, api_id)?;
            let operation = api.operations.iter().find(|o| &o.id == op).ok_or_else(|| {
                StoreError::NotFound(format!("operation '{op}' of api '{api_id}'"))
            })?;
            Ok((version, operation.policy.clone()))
        }
    }
}

fn api_of<'s>(state: &'s State, id: &str) -> Result<(u64, &'s Api), StoreError> {
    let stored = state
        .get(Kind::Api, id)
        .ok_or_else(|| StoreError::NotFound(describe(Kind::Api, id)))?;
    match &*stored.doc {
        Doc::Api(api) => Ok((stored.version, api)),
        _ => Err(StoreError::Corrupt(format!("api `{id}`"))),
    }
}

/// Sets (or, with `None`, removes) a policy document in the candidate state.
fn set_policy(
    next: &mut State,
    scope: &PolicyScope,
    xml: Option<String>,
) -> Result<Row, StoreError> {
    let version = next.revision;
    match scope {
        PolicyScope::Global => {
            next.global_policy = xml.map(|xml| PolicyDoc { xml, version });
            Ok(Row::GlobalPolicy)
        }
        PolicyScope::Product(id) => {
            let mut product = match next.get(Kind::Product, id).map(|s| &*s.doc) {
                Some(Doc::Product(p)) => p.clone(),
                _ => return Err(StoreError::NotFound(describe(Kind::Product, id))),
            };
            product.policy = xml;
            next.put(Doc::Product(product), id, version);
            Ok(Row::Entity(Kind::Product, id.clone()))
        }
        PolicyScope::Api(id) | PolicyScope::Operation(id, _) => {
            let mut api = api_of(next, id)?.1.clone();
            match scope {
                PolicyScope::Operation(_, op) => {
                    let operation =
                        api.operations
                            .iter_mut()
                            .find(|o| &o.id == op)
                            .ok_or_else(|| {
                                StoreError::NotFound(format!("operation '{op}' of api '{id}'"))
                            })?;
                    operation.policy = xml;
                }
                _ => api.policy = xml,
            }
            next.put(Doc::Api(api), id, version);
            Ok(Row::Entity(Kind::Api, id.clone()))
        }
    }
}

/// Checks `If-Match` / `If-None-Match: *` against the current version (`None`: absent).
fn check_precondition(
    current: Option<u64>,
    precondition: Precondition,
    what: &str,
) -> Result<(), StoreError> {
    if precondition.if_none_match_any && current.is_some() {
        return Err(StoreError::PreconditionFailed(format!(
            "{what} already exists"
        )));
    }
    match (precondition.if_match, current) {
        (None, _) | (Some(IfMatch::Any), Some(_)) => Ok(()),
        (Some(_), None) => Err(StoreError::PreconditionFailed(format!(
            "{what} does not exist"
        ))),
        (Some(IfMatch::Version(expected)), Some(actual)) if expected == actual => Ok(()),
        (Some(IfMatch::Version(expected)), Some(actual)) => Err(StoreError::PreconditionFailed(
            format!("{what} is at version {actual}, not {expected}"),
        )),
    }
}
