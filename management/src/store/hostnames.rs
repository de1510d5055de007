//! Custom hostnames of a gateway: `/gateways/{id}/hostnames/{hostname}`.

use super::tls_docs::{read_hostname, HostnameDoc};
use super::{
    check_precondition, describe, resource, AuditNote, Check, Entity, Kind, Precondition, Row,
    Store, StoreError, Written,
};

impl Store {
    /// Creates or replaces hostname `hostname` of gateway `gateway` from its
    /// JSON body (core's `Hostname`; its `hostname`, if given, must match).
    pub fn put_hostname(
        &mut self,
        gateway: &str,
        hostname: &str,
        body: serde_json::Value,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<Written, StoreError> {
        if self.state.get(Kind::Gateway, gateway).is_none() {
            return Err(StoreError::NotFound(describe(Kind::Gateway, gateway)));
        }
        if hostname.contains('/') {
            return Err(StoreError::Invalid(format!(
                "`{hostname}` is not a host name"
            )));
        }
        let id = HostnameDoc::entity_id(gateway, hostname);
        let what = describe(Kind::Hostname, &id);
        let existing = self.state.get(Kind::Hostname, &id).cloned();
        check_precondition(existing.as_ref().map(|s| s.version), precondition, &what)?;
        let doc = super::docs::Doc::Hostname(read_hostname(gateway, hostname, body)?);
        let created = existing.is_none();
        let body = doc.to_output();
        let note = AuditNote {
            action: if created { "create" } else { "replace" }.to_owned(),
            resource: resource(Kind::Hostname, &id),
            detail: Some(doc.to_audit()),
        };
        let mut next = self.begin();
        let version = next.revision;
        next.put(doc, &id, version);
        let rows = [Row::Entity(Kind::Hostname, id.clone())];
        self.commit(
            next,
            &rows,
            Check::Hostnames(gateway),
            note,
            actor,
            now_unix,
        )?;
        Ok(Written {
            entity: Entity {
                id: hostname.to_owned(),
                body,
                version,
            },
            created,
        })
    }

    /// Hostname `hostname` of gateway `gateway`.
    pub fn get_hostname(&self, gateway: &str, hostname: &str) -> Result<Entity, StoreError> {
        let mut entity = self.get(Kind::Hostname, &HostnameDoc::entity_id(gateway, hostname))?;
        entity.id = hostname.to_owned();
        Ok(entity)
    }

    /// Deletes hostname `hostname` of gateway `gateway`.
    pub fn delete_hostname(
        &mut self,
        gateway: &str,
        hostname: &str,
        precondition: Precondition,
        actor: &str,
        now_unix: u64,
    ) -> Result<(), StoreError> {
        let id = HostnameDoc::entity_id(gateway, hostname);
        self.delete(Kind::Hostname, &id, precondition, actor, now_unix)
    }

    /// A page of gateway `gateway`'s hostnames ordered by name, and how many it has.
    pub fn list_hostnames(
        &self,
        gateway: &str,
        skip: usize,
        top: usize,
    ) -> Result<(Vec<Entity>, usize), StoreError> {
        if self.state.get(Kind::Gateway, gateway).is_none() {
            return Err(StoreError::NotFound(describe(Kind::Gateway, gateway)));
        }
        let prefix = format!("{gateway}/");
        let all: Vec<Entity> = self
            .state
            .all(Kind::Hostname)
            .filter(|(id, _)| id.starts_with(&prefix))
            .map(|(id, stored)| Entity {
                id: id[prefix.len()..].to_owned(),
                body: stored.doc.to_output(),
                version: stored.version,
            })
            .collect();
        let total = all.len();
        Ok((all.into_iter().skip(skip).take(top).collect(), total))
    }
}
