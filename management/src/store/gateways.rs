//! Gateways: keys, tokens, the configuration they fetch, heartbeats and status.

use bytes::Bytes;
use portcullis_core::config::store::StoreUrl;
use portcullis_core::sync::token;
use rusqlite::params;

use super::docs::Doc;
use super::{
    check_precondition, db, describe, key_name, resource, secrets, AuditNote, Check, GatewayConfig,
    GatewayKeys, GatewayStatus, GatewayToken, Heartbeat, InstanceStatus, KeyType, Kind,
    Precondition, Row, Store, StoreError, INSTANCE_RETENTION_SECS, ONLINE_WINDOW_SECS,
};

impl Store {
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
        let mut snapshot = self.state.gateway_snapshot(gateway);
        portcullis_core::sync::content::stamp(&mut snapshot, &self.store_id);
        let config = GatewayConfig {
            revision: snapshot.revision,
            id: portcullis_core::sync::ContentId::of(&snapshot),
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
        let mut heartbeat = heartbeat.clone();
        if let Some(store) = &mut heartbeat.state_store {
            store.target = redact_target(&store.target);
        }
        let json = serde_json::to_string(&heartbeat)
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
}

/// A heartbeat's store target with any password hidden: gateways send it
/// redacted, and what the status shows must not depend on that.
fn redact_target(target: &str) -> String {
    match target.parse::<StoreUrl>() {
        Ok(StoreUrl::Redis(url)) if url.password.is_some() => url.display_redacted(),
        _ => target.to_owned(),
    }
}
