//! The management plane's store: entities, policies, gateways and the audit log in SQLite.
//!
//! One [`Store`] owns one data directory (`<dir>/portcullis.db`). It is synchronous
//! (rusqlite); the HTTP layer keeps it behind a mutex or calls it from blocking tasks.
//! Every accepted change is one SQLite transaction that compiles the whole candidate
//! configuration first, writes the entity, bumps the single revision counter and
//! appends an audit entry. Time is an argument (`now_unix`, Unix seconds) so tests
//! control it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use portcullis_core::config::{Api, CompiledConfig};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub mod analytics;
mod db;
mod docs;
mod error;
mod fragment;
mod gateway_store;
mod gateways;
mod hostnames;
#[cfg(test)]
mod identity_tests;
pub mod kek;
mod policies;
mod portal;
mod references;
mod revisions;
mod secrets;
mod sessions;
mod state;
mod subscriptions;
#[cfg(test)]
mod tests;
mod tls_docs;
mod token_renewal;
mod types;

use docs::Doc;
use state::{State, Stored};

pub use analytics::AnalyticsStore;
pub use error::StoreError;
pub use portal::{random_token, NewPortalUser, PortalGateway, PortalSubscription, PortalUser};
pub use revisions::revision_id;
pub use secrets::seed_random_on_this_thread;
pub use sessions::{NewSession, Realm, Session};
pub use token_renewal::RENEWED_LIFETIME_SECS;

/// The first `bytes` bytes of `data`, lowercase hex (for tags and short ids).
pub(crate) fn hex_prefix(data: &[u8], bytes: usize) -> String {
    secrets::hex(&data[..bytes.min(data.len())])
}
pub use types::{
    AuditEntry, Entity, GatewayConfig, GatewayKeys, GatewayStatus, GatewayToken, Heartbeat,
    IfMatch, InstanceStatus, KeyType, Kind, PolicyDoc, PolicyScope, Precondition, SubscriptionKeys,
    Written,
};

/// How long a gateway instance counts as online after its last heartbeat: 3 × 60 s.
pub const ONLINE_WINDOW_SECS: u64 = 180;

/// How long an instance that stopped sending heartbeats stays in its gateway's status: 7 days.
pub const INSTANCE_RETENTION_SECS: u64 = 7 * 24 * 3600;

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
    /// The store's identity; see [`Store::store_id`].
    store_id: String,
    /// Seals certificates' private keys; loaded at open if its file exists,
    /// made on the first certificate upload otherwise.
    kek: Option<kek::KeyEncryptionKey>,
    /// Where the key-encryption key is (made on the first certificate upload).
    kek_path: PathBuf,
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
    /// The OpenAPI document imported into an API (JSON text), or none.
    ApiDocument(String, Option<String>),
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
        Store::open_with_kek(dir, None)
    }

    /// [`Store::open`] with the certificates' key-encryption key in `kek_file`
    /// instead of `<dir>/certificate-keys.kek` (a secret mounted apart from the
    /// database's volume).
    pub fn open_with_kek(dir: &Path, kek_file: Option<&Path>) -> Result<Store, StoreError> {
        let kek_path = kek_file.map_or_else(|| dir.join(kek::FILE_NAME), Path::to_owned);
        let conn = db::open(dir)?;
        let mut state = State {
            revision: db::revision(&conn)?,
            ..State::default()
        };
        let kek = kek::KeyEncryptionKey::load(&kek_path)?;
        for (kind, id, body, version) in db::entity_rows(&conn)? {
            let kind = docs::kind_from_table(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown entity kind `{kind}`")))?;
            let mut doc = Doc::from_stored(kind, &body)?;
            if let Doc::Certificate(cert) = &mut doc {
                let kek = kek.as_ref().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "certificate '{id}' has a sealed private key but its key-encryption key {} is missing",
                        kek_path.display()
                    ))
                })?;
                cert.private_key_pem = kek.open(&id, &cert.sealed_private_key)?;
            }
            if let Doc::Gateway(gateway) = &mut doc {
                if !gateway.sealed_store_password.is_empty() {
                    let kek = kek.as_ref().ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "gateway '{id}' has a sealed store password but its key-encryption key {} is missing",
                            kek_path.display()
                        ))
                    })?;
                    let password = kek.open_store_password(&id, &gateway.sealed_store_password)?;
                    if let Some(settings) = &mut gateway.store {
                        gateway_store::set_password(settings, password);
                    }
                }
            }
            state.put(doc, &id, version);
        }
        state.global_policy =
            db::global_policy(&conn)?.map(|(xml, version)| PolicyDoc { xml, version });
        for (id, document) in db::api_document_rows(&conn)? {
            let document: serde_json::Value = serde_json::from_str(&document).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the OpenAPI document of api '{id}' is not JSON: {e}"
                ))
            })?;
            state.api_documents.insert(id, Arc::new(document));
        }
        for (id, primary, secondary) in db::gateway_key_rows(&conn)? {
            state
                .gateway_keys
                .insert(id, GatewayKeys { primary, secondary });
        }
        let admin = db::admin_digests(&conn)?;
        let store_id = match db::store_id(&conn)? {
            Some(id) => id,
            None => {
                let id = secrets::random_hex(16)?;
                db::set_store_id(&conn, &id)?;
                tracing::info!(store_id = %id, "store identity made");
                id
            }
        };
        tracing::info!(
            path = %dir.join(db::FILE_NAME).display(),
            revision = state.revision,
            store_id = %store_id,
            "store opened"
        );
        Ok(Store {
            conn,
            state,
            admin,
            configs: Mutex::new(HashMap::new()),
            store_id,
            kek,
            kek_path,
        })
    }

    /// The key-encryption key, made now if this is the first certificate.
    fn kek(&mut self) -> Result<&kek::KeyEncryptionKey, StoreError> {
        if self.kek.is_none() {
            self.kek = Some(kek::KeyEncryptionKey::load_or_create(&self.kek_path)?);
        }
        self.kek
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("no key-encryption key".to_owned()))
    }

    /// The store's identity: random, made when the database was created and kept
    /// in it (a restored copy keeps the copy's). Every snapshot carries it.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Replaces the store's identity with a new random one and returns it: for an
    /// operator after restoring the database from a copy, so every gateway
    /// fetches the restored content whatever revision it holds.
    pub fn new_store_identity(&mut self) -> Result<String, StoreError> {
        let id = secrets::random_hex(16)?;
        db::set_store_id(&self.conn, &id)?;
        tracing::warn!(old = %self.store_id, new = %id, "store identity replaced");
        self.store_id = id.clone();
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(id)
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
        let mut doc = Doc::from_request(kind, id, body, existing.as_ref().map(|s| &*s.doc))?;
        if let Doc::Certificate(cert) = &mut doc {
            cert.sealed_private_key = self.kek()?.seal(id, &cert.private_key_pem)?;
        }
        if let Doc::Gateway(gateway) = &mut doc {
            gateway.sealed_store_password =
                match gateway.store.as_ref().and_then(gateway_store::password) {
                    Some(password) => self.kek()?.seal_store_password(id, password)?,
                    None => String::new(),
                };
        }
        self.check_references(&doc, &what)?;
        let created = existing.is_none();
        // The create response is the only one that shows generated keys and secret
        // values (a certificate's key and a gateway's store password are never shown).
        let body = if created && !matches!(kind, Kind::Certificate | Kind::Gateway) {
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
        let mut referrers = self.state.referrers(kind, id);
        referrers.extend(references::policy_referrers(&self.state, kind, id));
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
            // A gateway's custom hostnames go with it.
            for host in self.state.hostnames_of(id) {
                let host_id = tls_docs::HostnameDoc::entity_id(id, &host.hostname);
                next.remove(Kind::Hostname, &host_id);
                rows.push(Row::Entity(Kind::Hostname, host_id));
            }
        }
        if kind == Kind::Api {
            next.api_documents.remove(id);
            rows.push(Row::ApiDocument(id.to_owned(), None));
            // An API's revisions go with it, as in APIM.
            for rev in self.state.revisions_of(id) {
                next.remove(Kind::Api, &rev.id);
                rows.push(Row::Entity(Kind::Api, rev.id.clone()));
                rows.push(Row::ApiDocument(rev.id.clone(), None));
            }
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

    /// Creates or replaces API `id` as `build` makes it from the current one (if
    /// any), storing `document` (JSON text) as its imported OpenAPI document, in one
    /// audited change (action `import`).
    pub fn import_api(
        &mut self,
        id: &str,
        build: impl FnOnce(Option<&Api>) -> Result<Api, StoreError>,
        document: String,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<Written, StoreError> {
        docs::check_id(Kind::Api, id)?;
        let what = describe(Kind::Api, id);
        let existing = self.state.get(Kind::Api, id).cloned();
        check_precondition(existing.as_ref().map(|s| s.version), precondition, &what)?;
        let current = match existing.as_ref().map(|s| &*s.doc) {
            Some(Doc::Api(api)) => Some(api),
            _ => None,
        };
        let mut api = build(current)?;
        api.id = id.to_owned();
        let doc = Doc::Api(api);
        let created = existing.is_none();
        let body = doc.to_output();
        let note = AuditNote {
            action: "import".to_owned(),
            resource: resource(Kind::Api, id),
            detail: Some(doc.to_audit()),
        };
        let mut next = self.begin();
        match serde_json::from_str::<serde_json::Value>(&document) {
            Ok(parsed) => {
                next.api_documents.insert(id.to_owned(), Arc::new(parsed));
            }
            Err(e) => {
                return Err(StoreError::Invalid(format!(
                    "the OpenAPI document is not JSON: {e}"
                )))
            }
        }
        let rows = [
            Row::Entity(Kind::Api, id.to_owned()),
            Row::ApiDocument(id.to_owned(), Some(document)),
        ];
        let version = next.revision;
        next.put(doc, id, version);
        self.commit(next, &rows, Check::Api(id), note, actor, now_unix)?;
        Ok(Written {
            entity: Entity {
                id: id.to_owned(),
                body,
                version,
            },
            created,
        })
    }

    /// API `id` and the OpenAPI document last imported into it (JSON text), if any.
    pub fn api_with_document(&self, id: &str) -> Result<(Api, Option<String>), StoreError> {
        let api = match self.state.get(Kind::Api, id).map(|s| &*s.doc) {
            Some(Doc::Api(api)) => api.clone(),
            _ => return Err(StoreError::NotFound(describe(Kind::Api, id))),
        };
        let document = self
            .conn
            .query_row(
                "SELECT document FROM api_documents WHERE api_id = ?1",
                [id],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        Ok((api, document))
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
        mut next: State,
        rows: &[Row],
        check: Check<'_>,
        note: AuditNote,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        // The documents snapshots carry follow every document row written
        // (imports, revisions copied or swapped, deletions), so the candidate
        // is compiled with them and the state never drifts from the table.
        for row in rows {
            if let Row::ApiDocument(id, document) = row {
                match document
                    .as_deref()
                    .map(serde_json::from_str::<serde_json::Value>)
                {
                    Some(Ok(parsed)) => {
                        next.api_documents.insert(id.clone(), Arc::new(parsed));
                    }
                    Some(Err(_)) | None => {
                        next.api_documents.remove(id);
                    }
                }
            }
        }
        compile_candidate(&next, check)?;
        let revision = db::to_i64(next.revision)?;
        let now = db::to_i64(now_unix)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for row in rows {
            match row {
                Row::Entity(kind, id) => match next.get(*kind, id) {
                    Some(stored) => {
                        if let Doc::User(user) = &*stored.doc {
                            // A portal user signs in with their current email.
                            tx.execute(
                                "UPDATE portal_credentials SET email = ?2 WHERE user_id = ?1",
                                params![id, user.email.to_lowercase()],
                            )?;
                        }
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
                        if *kind == Kind::User {
                            // A deleted user's password and sessions go with it.
                            tx.execute(
                                "DELETE FROM portal_credentials WHERE user_id = ?1",
                                params![id],
                            )?;
                            tx.execute(
                                "DELETE FROM web_sessions WHERE realm = ?1 AND subject = ?2",
                                params![Realm::Portal.as_str(), id],
                            )?;
                        }
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
                Row::ApiDocument(id, Some(document)) => {
                    tx.execute(
                        "INSERT INTO api_documents (api_id, document, updated_at)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (api_id) DO UPDATE SET document = excluded.document,
                             updated_at = excluded.updated_at",
                        params![id, document, now],
                    )?;
                }
                Row::ApiDocument(id, None) => {
                    tx.execute("DELETE FROM api_documents WHERE api_id = ?1", [id])?;
                }
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
            Doc::User(user) => {
                // Emails name portal accounts: one user per email, in any case.
                let taken = self.state.all(Kind::User).any(|(other, s)| match &*s.doc {
                    Doc::User(u) => other != &user.id && u.email.eq_ignore_ascii_case(&user.email),
                    _ => false,
                });
                if taken {
                    return Err(StoreError::Conflict(format!(
                        "{what}: another user has the email {}",
                        user.email
                    )));
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

/// Compiles a candidate state as `check` says: what every write (and a policy
/// check) must pass before anything is stored.
fn compile_candidate(next: &State, check: Check<'_>) -> Result<(), StoreError> {
    let snapshot = match check {
        Check::Skip => None,
        Check::Full => Some(next.candidate_snapshot(|_| true)),
        Check::Api(changed) => Some(next.candidate_snapshot(|api| api == changed)),
        Check::Structure => Some(next.candidate_snapshot(|_| false)),
        Check::Hostnames(gateway) => Some(next.hostnames_snapshot(gateway)),
    };
    if let Some(snapshot) = snapshot {
        CompiledConfig::compile(snapshot)?;
    }
    Ok(())
}

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
    /// A gateway's custom hostnames changed: they and the certificates alone
    /// (hostnames are per gateway; two gateways may serve the same name).
    Hostnames(&'a str),
}

/// The check for a PUT of `kind` / `id`.
fn check_for(kind: Kind, id: &str) -> Check<'_> {
    match kind {
        Kind::User | Kind::Gateway => Check::Skip,
        Kind::NamedValue | Kind::Fragment => Check::Full,
        Kind::Api => Check::Api(id),
        Kind::Product
        | Kind::Subscription
        | Kind::Backend
        | Kind::Certificate
        | Kind::CaCertificate
        | Kind::VersionSet => Check::Structure,
        Kind::Hostname => Check::Hostnames(id.split('/').next().unwrap_or_default()),
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
    if kind == Kind::Hostname {
        if let Some((gateway, host)) = id.split_once('/') {
            return format!("hostname '{host}' of gateway '{gateway}'");
        }
    }
    format!("{} '{id}'", kind.noun())
}

/// `/apis/echo`, for the audit log.
fn resource(kind: Kind, id: &str) -> String {
    if kind == Kind::Hostname {
        if let Some((gateway, host)) = id.split_once('/') {
            return format!("/gateways/{gateway}/hostnames/{host}");
        }
    }
    format!("/{}/{id}", kind.collection())
}

fn key_name(which: KeyType) -> &'static str {
    match which {
        KeyType::Primary => "primary",
        KeyType::Secondary => "secondary",
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
