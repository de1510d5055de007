//! What the developer portal reads and writes: its users' credentials, the
//! catalogue, and a user's own subscriptions (every subscription call checks the
//! owner, so one user never reaches another's).

use portcullis_core::config::{Api, Product, SubscriptionState};
use rusqlite::{params, OptionalExtension};
use serde_json::json;

use super::docs::{Doc, GatewayDoc, UserDoc, UserState};
use super::state::{owner_user, scope_target, ScopeTarget};
use super::{secrets, KeyType, Kind, Precondition, Store, StoreError};

/// A portal user, as the portal shows and checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUser {
    /// The `User` entity's id.
    pub id: String,
    /// The email address (lower case when created by sign-up).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Whether an administrator blocked the user.
    pub blocked: bool,
}

/// What sign-up stores: the user's names and email, and the password's hash.
#[derive(Clone)]
pub struct NewPortalUser {
    /// The email address, lower case.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The password's argon2id PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for NewPortalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPortalUser")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A user's subscription as the portal shows it, keys included.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalSubscription {
    /// The subscription's id.
    pub id: String,
    /// Its display name.
    pub display_name: String,
    /// Its scope: `/products/{id}`, `/apis/{id}` or `/apis`.
    pub scope: String,
    /// Its state.
    pub state: SubscriptionState,
    /// The primary key.
    pub primary_key: String,
    /// The secondary key.
    pub secondary_key: String,
}

impl std::fmt::Debug for PortalSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalSubscription")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PortalSubscription {
    /// The product id when the scope is a product.
    pub fn product_id(&self) -> Option<&str> {
        match scope_target(&self.scope) {
            Some(ScopeTarget::Product(p)) => Some(p),
            _ => None,
        }
    }

    /// Whether it still counts: not cancelled, expired or rejected.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            SubscriptionState::Active | SubscriptionState::Submitted | SubscriptionState::Suspended
        )
    }
}

/// A gateway that serves an API and says where consumers reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGateway {
    /// The gateway's id.
    pub id: String,
    /// Its public base URL, without a trailing `/`.
    pub url: String,
}

/// 32 random bytes, hex: for CSRF cookies and other one-off tokens.
pub fn random_token() -> Result<String, StoreError> {
    secrets::random_hex(32)
}

/// The user as the portal sees them.
fn portal_user(user: &UserDoc) -> PortalUser {
    PortalUser {
        id: user.id.clone(),
        email: user.email.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        blocked: user.state == UserState::Blocked,
    }
}

/// The actor the audit log names for a portal user's changes.
fn actor(user_id: &str) -> String {
    format!("portal:{user_id}")
}

impl Store {
    /// Creates a `User` entity and its credentials. An email that an account (or
    /// any user entity) already has is a [`StoreError::Conflict`].
    pub fn portal_sign_up(
        &mut self,
        new: NewPortalUser,
        now_unix: u64,
    ) -> Result<PortalUser, StoreError> {
        let email = new.email.to_lowercase();
        if let Some(user_id) = self.credential_owner(&email)? {
            if self.state.get(Kind::User, &user_id).is_some() {
                return Err(StoreError::Conflict(format!(
                    "an account with the email {email} already exists"
                )));
            }
            // The user entity was deleted through the REST API: its credentials go too.
            self.conn.execute(
                "DELETE FROM portal_credentials WHERE user_id = ?1",
                [&user_id],
            )?;
        }
        let taken = self.state.all(Kind::User).any(|(_, s)| match &*s.doc {
            Doc::User(u) => u.email.eq_ignore_ascii_case(&email),
            _ => false,
        });
        if taken {
            return Err(StoreError::Conflict(format!(
                "an account with the email {email} already exists"
            )));
        }
        let id = format!("u-{}", secrets::random_hex(12)?);
        let body = json!({
            "id": id,
            "email": email,
            "firstName": new.first_name,
            "lastName": new.last_name,
            "state": "active",
            "note": "signed up in the developer portal",
        });
        self.put(
            Kind::User,
            &id,
            body,
            Precondition::NONE,
            &actor(&id),
            now_unix,
        )?;
        let inserted = self.conn.execute(
            "INSERT INTO portal_credentials (user_id, email, password_hash, created_unix)
             VALUES (?1, ?2, ?3, ?4)",
            params![id, email, new.password_hash, super::db::to_i64(now_unix)?],
        );
        if let Err(e) = inserted {
            // Without credentials the account could never sign in: take the user back out.
            if let Err(undo) =
                self.delete(Kind::User, &id, Precondition::NONE, &actor(&id), now_unix)
            {
                tracing::error!(user = %id, error = %undo, "could not remove a user whose credentials failed");
            }
            return Err(e.into());
        }
        self.portal_user(&id)?
            .ok_or_else(|| StoreError::Corrupt(format!("user `{id}` vanished after sign-up")))
    }

    /// The user with sign-in `email` (compared lower case) and their password hash.
    pub fn portal_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(PortalUser, String)>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT user_id, password_hash FROM portal_credentials WHERE email = ?1",
                [email.to_lowercase()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        let Some((user_id, hash)) = row else {
            return Ok(None);
        };
        Ok(self.portal_user(&user_id)?.map(|user| (user, hash)))
    }

    /// User `id`, if it exists.
    pub fn portal_user(&self, id: &str) -> Result<Option<PortalUser>, StoreError> {
        Ok(match self.state.get(Kind::User, id).map(|s| &*s.doc) {
            Some(Doc::User(user)) => Some(portal_user(user)),
            _ => None,
        })
    }

    /// Every API, by id.
    pub fn portal_apis(&self) -> Vec<Api> {
        self.state
            .all(Kind::Api)
            .filter_map(|(_, s)| match &*s.doc {
                // Developers see current revisions only, as in APIM's portal.
                Doc::Api(a) if a.is_current => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    /// The version set API `api` is a version of, and the current APIs of
    /// that set (id and version identifier), by version.
    pub fn portal_versions(
        &self,
        api: &Api,
    ) -> Option<(portcullis_core::config::VersionSet, Vec<(String, String)>)> {
        let set_id = api.api_version_set_id.as_deref()?;
        let set = match self.state.get(Kind::VersionSet, set_id).map(|s| &*s.doc) {
            Some(Doc::VersionSet(set)) => set.clone(),
            _ => return None,
        };
        let mut versions: Vec<(String, String)> = self
            .portal_apis()
            .into_iter()
            .filter(|a| a.api_version_set_id.as_deref() == Some(set_id))
            .map(|a| (a.id, a.api_version.unwrap_or_default()))
            .collect();
        versions.sort_by(|a, b| a.1.cmp(&b.1));
        Some((set, versions))
    }

    /// Every product, by id.
    pub fn portal_products(&self) -> Vec<Product> {
        self.state
            .all(Kind::Product)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::Product(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Product `id`.
    pub fn portal_product(&self, id: &str) -> Result<Product, StoreError> {
        match self.state.get(Kind::Product, id).map(|s| &*s.doc) {
            Some(Doc::Product(p)) => Ok(p.clone()),
            _ => Err(StoreError::NotFound(format!("product '{id}'"))),
        }
    }

    /// The gateways that serve API `api_id` and have a public URL.
    pub fn portal_gateways_for(&self, api_id: &str) -> Vec<PortalGateway> {
        self.state
            .all(Kind::Gateway)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::Gateway(g) => Some(g),
                _ => None,
            })
            .filter(|g: &&GatewayDoc| g.apis.iter().any(|a| a == api_id))
            .filter_map(|g| {
                g.url.as_ref().map(|url| PortalGateway {
                    id: g.id.clone(),
                    url: url.trim_end_matches('/').to_owned(),
                })
            })
            .collect()
    }

    /// Every subscription `user_id` owns, by id.
    pub fn portal_subscriptions(&self, user_id: &str) -> Vec<PortalSubscription> {
        self.state
            .all(Kind::Subscription)
            .filter_map(|(_, s)| match &*s.doc {
                Doc::Subscription(sub)
                    if sub.owner_id.as_deref().map(owner_user) == Some(user_id) =>
                {
                    Some(PortalSubscription {
                        id: sub.id.clone(),
                        display_name: sub.display_name.clone(),
                        scope: sub.scope.clone(),
                        state: sub.state,
                        primary_key: sub.primary_key.clone(),
                        secondary_key: sub.secondary_key.clone(),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Subscription `id` if `user_id` owns it; anyone else's is [`StoreError::NotFound`].
    pub fn portal_subscription(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<PortalSubscription, StoreError> {
        self.portal_subscriptions(user_id)
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("subscription '{id}'")))
    }

    /// Subscribes `user_id` to product `product_id`: `active`, or `submitted` when the
    /// product needs approval. A live subscription the user already has to the product
    /// is returned instead (`false`: nothing was created).
    pub fn portal_subscribe(
        &mut self,
        user_id: &str,
        product_id: &str,
        now_unix: u64,
    ) -> Result<(PortalSubscription, bool), StoreError> {
        let product = self.portal_product(product_id)?;
        if self.portal_user(user_id)?.is_none() {
            return Err(StoreError::NotFound(format!("user '{user_id}'")));
        }
        if let Some(existing) = self
            .portal_subscriptions(user_id)
            .into_iter()
            .find(|s| s.is_live() && s.product_id() == Some(product_id))
        {
            return Ok((existing, false));
        }
        let id = format!("s-{}", secrets::random_hex(12)?);
        let state = if product.approval_required {
            "submitted"
        } else {
            "active"
        };
        let name = if product.display_name.is_empty() {
            &product.id
        } else {
            &product.display_name
        };
        let body = json!({
            "id": id,
            "displayName": name,
            "scope": format!("/products/{product_id}"),
            "ownerId": format!("/users/{user_id}"),
            "state": state,
        });
        self.put(
            Kind::Subscription,
            &id,
            body,
            Precondition::NONE,
            &actor(user_id),
            now_unix,
        )?;
        Ok((self.portal_subscription(user_id, &id)?, true))
    }

    /// Regenerates one key of `user_id`'s subscription `id`.
    pub fn portal_regenerate_key(
        &mut self,
        user_id: &str,
        id: &str,
        which: KeyType,
        now_unix: u64,
    ) -> Result<PortalSubscription, StoreError> {
        self.portal_subscription(user_id, id)?;
        self.regenerate_subscription_key(id, which, Precondition::NONE, &actor(user_id), now_unix)?;
        self.portal_subscription(user_id, id)
    }

    /// Cancels `user_id`'s subscription `id` (cancelling twice is fine).
    pub fn portal_cancel(
        &mut self,
        user_id: &str,
        id: &str,
        now_unix: u64,
    ) -> Result<PortalSubscription, StoreError> {
        self.portal_subscription(user_id, id)?;
        self.set_subscription_state(
            id,
            SubscriptionState::Cancelled,
            Precondition::NONE,
            &actor(user_id),
            now_unix,
        )?;
        self.portal_subscription(user_id, id)
    }

    /// The user id whose credentials have sign-in `email`.
    /// The password hash of user `user_id`, if they have portal credentials.
    pub fn portal_password_hash(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash FROM portal_credentials WHERE user_id = ?1",
                [user_id],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }

    /// Replaces user `user_id`'s password hash (not found if they have none).
    pub fn portal_set_password(&mut self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE portal_credentials SET password_hash = ?2 WHERE user_id = ?1",
            [user_id, hash],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "user `{user_id}` has no portal password"
            )));
        }
        Ok(())
    }

    fn credential_owner(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_id FROM portal_credentials WHERE email = ?1",
                [email],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Realm;

    const T0: u64 = 1_700_000_000;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let put = |s: &mut Store, kind, id: &str, body| {
            s.put(kind, id, body, Precondition::NONE, "tester", T0)
                .unwrap();
        };
        put(
            &mut store,
            Kind::Api,
            "a1",
            json!({"path": "one", "serviceUrl": "http://127.0.0.1:9000/"}),
        );
        put(&mut store, Kind::Product, "open", json!({"apis": ["a1"]}));
        put(
            &mut store,
            Kind::Product,
            "gold",
            json!({"apis": ["a1"], "approvalRequired": true}),
        );
        (dir, store)
    }

    fn new_user(email: &str) -> NewPortalUser {
        NewPortalUser {
            email: email.to_owned(),
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            password_hash: "$argon2id$stand-in".to_owned(),
        }
    }

    #[test]
    fn an_admin_changing_or_deleting_a_user_carries_to_their_sign_in() {
        let (_dir, mut store) = open();
        let user = store
            .portal_sign_up(new_user("ada@example.com"), T0)
            .unwrap();
        let session = store
            .create_session(Realm::Portal, &user.id, T0, 60)
            .unwrap();
        let mut body = store.get(Kind::User, &user.id).unwrap().body;
        body["email"] = json!("Ada@Analytical.example");
        store
            .put(Kind::User, &user.id, body, Precondition::NONE, "tester", T0)
            .unwrap();
        // The new email signs in, the old one no longer does, and is free again.
        let (found, _) = store
            .portal_credentials("ada@analytical.example")
            .unwrap()
            .unwrap();
        assert_eq!(found.id, user.id);
        assert!(store
            .portal_credentials("ada@example.com")
            .unwrap()
            .is_none());
        store
            .portal_sign_up(new_user("ada@example.com"), T0)
            .unwrap();
        // No two users share an email, whatever its case.
        assert!(matches!(
            store.put(
                Kind::User,
                "u-twin",
                json!({"email": "ADA@analytical.example", "firstName": "A", "lastName": "B"}),
                Precondition::NONE,
                "tester",
                T0,
            ),
            Err(StoreError::Conflict(_))
        ));
        // Deleting the user removes their password and ends their sessions.
        store
            .delete(Kind::User, &user.id, Precondition::NONE, "tester", T0)
            .unwrap();
        assert!(store.portal_password_hash(&user.id).unwrap().is_none());
        assert_eq!(store.session(Realm::Portal, &session.id, T0).unwrap(), None);
    }

    #[test]
    fn sign_up_creates_a_user_and_credentials_once_per_email() {
        let (dir, mut store) = open();
        let user = store
            .portal_sign_up(new_user("Ada@Example.com"), T0)
            .unwrap();
        assert_eq!(user.email, "ada@example.com");
        let entity = store.get(Kind::User, &user.id).unwrap();
        assert_eq!(entity.body["email"], "ada@example.com");
        let (found, hash) = store
            .portal_credentials("ADA@example.COM")
            .unwrap()
            .unwrap();
        assert_eq!(found.id, user.id);
        assert_eq!(hash, "$argon2id$stand-in");
        assert!(matches!(
            store.portal_sign_up(new_user("ada@EXAMPLE.com"), T0),
            Err(StoreError::Conflict(_))
        ));
        // An admin-made user with the email blocks sign-up with it too.
        store
            .put(
                Kind::User,
                "u-admin",
                json!({"email": "grace@example.com", "firstName": "G", "lastName": "H"}),
                Precondition::NONE,
                "tester",
                T0,
            )
            .unwrap();
        assert!(matches!(
            store.portal_sign_up(new_user("Grace@example.com"), T0),
            Err(StoreError::Conflict(_))
        ));
        // Credentials survive a restart.
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store
            .portal_credentials("ada@example.com")
            .unwrap()
            .is_some());
        // Once the user entity is deleted, the email can sign up again.
        store
            .delete(Kind::User, &user.id, Precondition::NONE, "tester", T0)
            .unwrap();
        assert!(store
            .portal_credentials("ada@example.com")
            .unwrap()
            .is_none());
        let again = store
            .portal_sign_up(new_user("ada@example.com"), T0)
            .unwrap();
        assert_ne!(again.id, user.id);
    }

    #[test]
    fn subscriptions_are_per_owner_and_one_live_per_product() {
        let (_dir, mut store) = open();
        let ada = store
            .portal_sign_up(new_user("ada@example.com"), T0)
            .unwrap();
        let bob = store
            .portal_sign_up(new_user("bob@example.com"), T0)
            .unwrap();
        let (open, created) = store.portal_subscribe(&ada.id, "open", T0).unwrap();
        assert!(created);
        assert_eq!(open.state, SubscriptionState::Active);
        assert_eq!(open.product_id(), Some("open"));
        let (again, created) = store.portal_subscribe(&ada.id, "open", T0).unwrap();
        assert!(!created);
        assert_eq!(again.id, open.id);
        let (gold, _) = store.portal_subscribe(&ada.id, "gold", T0).unwrap();
        assert_eq!(gold.state, SubscriptionState::Submitted);
        assert!(matches!(
            store.portal_subscribe(&ada.id, "nope", T0),
            Err(StoreError::NotFound(_))
        ));

        // Bob sees and touches none of Ada's.
        assert!(store.portal_subscriptions(&bob.id).is_empty());
        for result in [
            store.portal_subscription(&bob.id, &open.id),
            store.portal_regenerate_key(&bob.id, &open.id, KeyType::Primary, T0),
            store.portal_cancel(&bob.id, &open.id, T0),
        ] {
            assert!(matches!(result, Err(StoreError::NotFound(_))));
        }
        assert_eq!(store.portal_subscription(&ada.id, &open.id).unwrap(), open);

        let regenerated = store
            .portal_regenerate_key(&ada.id, &open.id, KeyType::Secondary, T0)
            .unwrap();
        assert_eq!(regenerated.primary_key, open.primary_key);
        assert_ne!(regenerated.secondary_key, open.secondary_key);
        let cancelled = store.portal_cancel(&ada.id, &open.id, T0).unwrap();
        assert_eq!(cancelled.state, SubscriptionState::Cancelled);
        // Cancelled no longer counts: subscribing again makes a new one.
        let (fresh, created) = store.portal_subscribe(&ada.id, "open", T0).unwrap();
        assert!(created);
        assert_ne!(fresh.id, open.id);
    }

    #[test]
    fn gateways_for_an_api_need_the_api_and_a_url() {
        let (_dir, mut store) = open();
        let put = |s: &mut Store, id: &str, body| {
            s.put(Kind::Gateway, id, body, Precondition::NONE, "tester", T0)
        };
        put(
            &mut store,
            "g1",
            json!({"location": {"name": "x"}, "apis": ["a1"], "url": "http://127.0.0.1:8080/"}),
        )
        .unwrap();
        put(
            &mut store,
            "g2",
            json!({"location": {"name": "x"}, "apis": ["a1"]}),
        )
        .unwrap();
        put(
            &mut store,
            "g3",
            json!({"location": {"name": "x"}, "url": "http://127.0.0.1:8081"}),
        )
        .unwrap();
        assert_eq!(
            store.portal_gateways_for("a1"),
            [PortalGateway {
                id: "g1".into(),
                url: "http://127.0.0.1:8080".into()
            }]
        );
        for bad in [
            "ftp://x",
            "127.0.0.1:8080",
            "http://",
            "http://u:p@host",
            "http://h/?q=1",
            "not a url",
        ] {
            let r = put(
                &mut store,
                "g4",
                json!({"location": {"name": "x"}, "url": bad}),
            );
            assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad}");
        }
    }
}
