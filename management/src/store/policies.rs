//! Policy documents at the four scopes, stored in their owner (global: its own row).

use portcullis_core::config::Api;

use super::docs::Doc;
use super::state::State;
use super::{
    check_precondition, compile_candidate, describe, AuditNote, Check, Kind, PolicyDoc,
    PolicyScope, Precondition, Row, Store, StoreError,
};

impl Store {
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

    /// Compiles `xml` as the policy document at `scope` with the rest of the current
    /// configuration, exactly as [`Store::put_policy`] would, without storing it:
    /// [`StoreError::Config`] names the line if it does not compile.
    pub fn check_policy(&self, scope: &PolicyScope, xml: &str) -> Result<(), StoreError> {
        let mut next = self.begin();
        set_policy(&mut next, scope, Some(xml.to_owned()))?;
        compile_candidate(&next, policy_check(scope))
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
}

/// The check for a change to the policy document at `scope`.
fn policy_check(scope: &PolicyScope) -> Check<'_> {
    match scope {
        PolicyScope::Global => Check::Full,
        PolicyScope::Product(_) => Check::Structure,
        PolicyScope::Api(api) | PolicyScope::Operation(api, _) => Check::Api(api),
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

#[cfg(test)]
mod tests {
    use portcullis_core::config::ConfigError;
    use serde_json::json;

    use super::*;

    const T0: u64 = 1_700_000_000;

    fn store_with_api() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("data")).expect("open");
        let api = json!({
            "path": "echo", "serviceUrl": "http://127.0.0.1:9000/",
            "operations": [{"id": "get", "method": "GET", "urlTemplate": "/items"}]
        });
        store
            .put(Kind::Api, "echo", api, Precondition::NONE, "t", T0)
            .expect("api");
        let nv = json!({"value": "7", "secret": false});
        store
            .put(Kind::NamedValue, "calls", nv, Precondition::NONE, "t", T0)
            .expect("named value");
        (dir, store)
    }

    #[test]
    fn check_policy_compiles_without_storing() {
        let (_dir, store) = store_with_api();
        let scope = PolicyScope::Api("echo".into());
        let revision = store.revision();
        let good = "<policies><inbound><base /><rate-limit calls=\"{{calls}}\" renewal-period=\"60\" /></inbound></policies>";
        store.check_policy(&scope, good).expect("compiles");
        let bad = "<policies>\n  <inbound>\n    <base />\n    <no-such-policy />\n  </inbound>\n</policies>";
        match store.check_policy(&scope, bad) {
            Err(StoreError::Config(e)) => match *e {
                ConfigError::Policy { error, .. } => assert_eq!(error.pos.line, 4),
                other => panic!("not a policy error: {other}"),
            },
            other => panic!("expected a policy error, got {other:?}"),
        }
        assert_eq!(store.revision(), revision, "nothing stored");
        assert!(matches!(
            store.get_policy(&scope),
            Err(StoreError::NotFound(_))
        ));
        let unknown = PolicyScope::Api("nope".into());
        assert!(matches!(
            store.check_policy(&unknown, good),
            Err(StoreError::NotFound(_))
        ));
    }
}
