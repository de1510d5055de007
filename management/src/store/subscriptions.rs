//! Subscription actions: keys, regeneration, suspend / activate / cancel.

use portcullis_core::config::SubscriptionState;

use super::docs::{Doc, SubscriptionDoc};
use super::{
    check_precondition, describe, key_name, resource, secrets, AuditNote, Check, Entity, KeyType,
    Kind, Precondition, Row, Store, StoreError, SubscriptionKeys,
};

impl Store {
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
}
