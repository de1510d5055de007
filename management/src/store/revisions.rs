//! API revisions: create one (a copy of the current revision with the next
//! number), list them, make one current, as APIM does.
//!
//! The current revision keeps the API's id (products, subscriptions and
//! gateways name it); a non-current revision `N` of API `orders` is the API
//! entity `orders~revN` (ids keep to the URL-unreserved characters, so APIM's
//! `orders;rev=N` is spelled with `~`), with `isCurrent: false` and
//! `apiRevisionOf: "orders"`. Making revision `N` current swaps the two
//! entities' contents in one change: one revision bump, one audit entry.

use portcullis_core::config::Api;

use super::docs::Doc;
use super::{describe, resource, AuditNote, Check, Entity, Kind, Row, Store, StoreError, Written};

/// The entity id of revision `n` of API `api`.
pub fn revision_id(api: &str, n: u32) -> String {
    format!("{api}~rev{n}")
}

impl Store {
    /// API `id` as stored, or 404.
    fn api_doc(&self, id: &str) -> Result<Api, StoreError> {
        match self.state.get(Kind::Api, id).map(|s| &*s.doc) {
            Some(Doc::Api(api)) => Ok(api.clone()),
            _ => Err(StoreError::NotFound(describe(Kind::Api, id))),
        }
    }

    /// The current revision of API `id`; naming a non-current revision is refused.
    fn current_api(&self, id: &str) -> Result<Api, StoreError> {
        let api = self.api_doc(id)?;
        match &api.api_revision_of {
            None => Ok(api),
            Some(base) => Err(StoreError::Invalid(format!(
                "api `{id}` is a revision of api `{base}`: name the API, `{base}`"
            ))),
        }
    }

    /// Every revision of API `id`, the current one included, by number.
    pub fn list_revisions(&self, id: &str) -> Result<Vec<Entity>, StoreError> {
        self.current_api(id)?;
        let mut out: Vec<(u32, Entity)> = Vec::new();
        for (entity_id, stored) in self.state.all(Kind::Api) {
            if let Doc::Api(api) = &*stored.doc {
                if api.revision_base() == id {
                    out.push((api.api_revision, super::entity(entity_id, stored)));
                }
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    /// Creates the next revision of API `id`: a copy of its current revision
    /// (operations and policies included), not current, with `description` as
    /// its release notes.
    pub fn create_revision(
        &mut self,
        id: &str,
        description: Option<String>,
        actor: &str,
        now_unix: u64,
    ) -> Result<Written, StoreError> {
        let revision = self.revision_copy(id, description)?;
        let new_id = revision.id.clone();
        let (_, document) = self.api_with_document(id)?;
        let doc = Doc::Api(revision);
        let body = doc.to_output();
        let note = AuditNote {
            action: "create-revision".to_owned(),
            resource: resource(Kind::Api, &new_id),
            detail: Some(doc.to_audit()),
        };
        let mut next = self.begin();
        let version = next.revision;
        next.put(doc, &new_id, version);
        let mut rows = vec![Row::Entity(Kind::Api, new_id.clone())];
        if document.is_some() {
            rows.push(Row::ApiDocument(new_id.clone(), document));
        }
        self.commit(next, &rows, Check::Api(&new_id), note, actor, now_unix)?;
        Ok(Written {
            entity: Entity {
                id: new_id,
                body,
                version,
            },
            created: true,
        })
    }

    /// The next revision of API `id` as it would be created (not stored): a copy
    /// of the current revision with the next number, not current.
    pub fn revision_copy(&self, id: &str, description: Option<String>) -> Result<Api, StoreError> {
        let current = self.current_api(id)?;
        let n = self
            .state
            .revisions_of(id)
            .map(|a| a.api_revision)
            .chain([current.api_revision])
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| {
                StoreError::Invalid(format!("api `{id}` has no revision number left"))
            })?;
        let new_id = revision_id(id, n);
        super::docs::check_id(Kind::Api, &new_id)?;
        Ok(Api {
            id: new_id,
            api_revision: n,
            is_current: false,
            api_revision_of: Some(id.to_owned()),
            api_revision_description: description,
            ..current
        })
    }

    /// Makes revision `n` of API `id` its current revision in one change: the
    /// revision's content becomes API `id`, the previous current one becomes
    /// revision entity `id~rev<old>`. Answers the new current revision.
    pub fn make_revision_current(
        &mut self,
        id: &str,
        n: u32,
        notes: Option<String>,
        actor: &str,
        now_unix: u64,
    ) -> Result<Entity, StoreError> {
        let current = self.current_api(id)?;
        if current.api_revision == n {
            return self.get(Kind::Api, id);
        }
        let from_id = revision_id(id, n);
        let chosen = self
            .state
            .revisions_of(id)
            .find(|a| a.api_revision == n)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("revision {n} of api '{id}'")))?;
        let old_id = revision_id(id, current.api_revision);
        let (_, current_document) = self.api_with_document(id)?;
        let (_, chosen_document) = self.api_with_document(&chosen.id)?;
        let promoted = Api {
            id: id.to_owned(),
            is_current: true,
            api_revision_of: None,
            api_revision_description: notes.or(chosen.api_revision_description.clone()),
            ..chosen.clone()
        };
        let demoted = Api {
            id: old_id.clone(),
            is_current: false,
            api_revision_of: Some(id.to_owned()),
            ..current
        };
        let promoted = Doc::Api(promoted);
        let body = promoted.to_output();
        let note = AuditNote {
            action: "make-current".to_owned(),
            resource: resource(Kind::Api, id),
            detail: Some(format!("revision {n}")),
        };
        let mut next = self.begin();
        let version = next.revision;
        next.remove(Kind::Api, &chosen.id);
        next.put(promoted, id, version);
        next.put(Doc::Api(demoted), &old_id, version);
        let rows = [
            Row::Entity(Kind::Api, id.to_owned()),
            Row::Entity(Kind::Api, old_id.clone()),
            Row::Entity(Kind::Api, from_id.clone()),
            Row::ApiDocument(old_id, current_document),
            Row::ApiDocument(id.to_owned(), chosen_document),
            Row::ApiDocument(from_id, None),
        ];
        self.commit(next, &rows, Check::Api(id), note, actor, now_unix)?;
        Ok(Entity {
            id: id.to_owned(),
            body,
            version,
        })
    }
}
