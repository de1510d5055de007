//! Browser sessions of the admin console and the developer portal.
//!
//! A session id is a random cookie value; only its SHA-256 is stored, so a copy of
//! the database does not hand out live sessions. Sessions live in SQLite (they
//! survive a restart of the management plane) but never touch the configuration:
//! creating or ending one does not change the revision.

use rusqlite::{params, OptionalExtension};

use super::db::{to_i64, to_u64};
use super::secrets::{digest, random_hex};
use super::{Store, StoreError};

/// Which site a session belongs to; a session of one never opens the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// The admin console (and the REST API through it).
    Admin,
    /// The developer portal.
    Portal,
}

impl Realm {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Realm::Admin => "admin",
            Realm::Portal => "portal",
        }
    }
}

/// A session just created: what goes into the cookie and the pages.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The cookie value (64 hex characters).
    pub id: String,
    /// The session's CSRF token, sent back by every form or unsafe request.
    pub csrf: String,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both values are secrets.
        f.write_str("NewSession { .. }")
    }
}

/// A live session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Who it is: `admin`, or the portal user's id.
    pub subject: String,
    /// The CSRF token of the session.
    pub csrf: String,
    /// When it ends, Unix seconds.
    pub expires_unix: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.subject)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts a session of `realm` for `subject` that lasts `ttl_secs` from `now`,
    /// and drops every session of any realm that has expired.
    pub fn create_session(
        &mut self,
        realm: Realm,
        subject: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<NewSession, StoreError> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now_i = to_i64(now)?;
        let expires = to_i64(now.saturating_add(ttl_secs))?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM web_sessions WHERE expires_unix <= ?1",
            params![now_i],
        )?;
        tx.execute(
            "INSERT INTO web_sessions (id_digest, realm, subject, csrf, created_unix, expires_unix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                digest(&id).as_slice(),
                realm.as_str(),
                subject,
                csrf,
                now_i,
                expires
            ],
        )?;
        tx.commit()?;
        Ok(NewSession { id, csrf })
    }

    /// The live session of `realm` whose cookie value is `id`, if any.
    pub fn session(&self, realm: Realm, id: &str, now: u64) -> Result<Option<Session>, StoreError> {
        // Only well-formed ids reach SQL: anything else is simply no session.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT subject, csrf, expires_unix FROM web_sessions
                 WHERE id_digest = ?1 AND realm = ?2 AND expires_unix > ?3",
                params![digest(id).as_slice(), realm.as_str(), to_i64(now)?],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(subject, csrf, expires)| {
            Ok(Session {
                subject,
                csrf,
                expires_unix: to_u64(expires)?,
            })
        })
        .transpose()
    }

    /// Ends the session whose cookie value is `id` (nothing if there is none).
    pub fn end_session(&mut self, id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM web_sessions WHERE id_digest = ?1",
            params![digest(id).as_slice()],
        )?;
        Ok(())
    }

    /// Ends every session of `subject` in `realm` (a blocked user, a changed password).
    pub fn end_sessions_of(&mut self, realm: Realm, subject: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM web_sessions WHERE realm = ?1 AND subject = ?2",
            params![realm.as_str(), subject],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn a_session_lives_until_it_expires_or_ends() {
        let (_dir, mut store) = store();
        let s = store.create_session(Realm::Portal, "u1", 1000, 60).unwrap();
        assert_eq!(s.id.len(), 64);
        let live = store.session(Realm::Portal, &s.id, 1059).unwrap().unwrap();
        assert_eq!(live.subject, "u1");
        assert_eq!(live.csrf, s.csrf);
        assert_eq!(live.expires_unix, 1060);
        assert_eq!(store.session(Realm::Portal, &s.id, 1060).unwrap(), None);
        let t = store.create_session(Realm::Portal, "u1", 2000, 60).unwrap();
        store.end_session(&t.id).unwrap();
        assert_eq!(store.session(Realm::Portal, &t.id, 2001).unwrap(), None);
    }

    #[test]
    fn realms_do_not_mix_and_revision_does_not_move() {
        let (_dir, mut store) = store();
        let before = store.revision();
        let s = store.create_session(Realm::Admin, "admin", 10, 60).unwrap();
        assert_eq!(store.session(Realm::Portal, &s.id, 11).unwrap(), None);
        assert!(store.session(Realm::Admin, &s.id, 11).unwrap().is_some());
        assert_eq!(store.revision(), before);
    }

    #[test]
    fn ending_a_subjects_sessions_and_bad_ids() {
        let (_dir, mut store) = store();
        let a = store.create_session(Realm::Portal, "u1", 10, 60).unwrap();
        let b = store.create_session(Realm::Portal, "u1", 10, 60).unwrap();
        let c = store.create_session(Realm::Portal, "u2", 10, 60).unwrap();
        store.end_sessions_of(Realm::Portal, "u1").unwrap();
        assert_eq!(store.session(Realm::Portal, &a.id, 11).unwrap(), None);
        assert_eq!(store.session(Realm::Portal, &b.id, 11).unwrap(), None);
        assert!(store.session(Realm::Portal, &c.id, 11).unwrap().is_some());
        for bad in ["", "zz", &"g".repeat(64), &c.id[..63]] {
            assert_eq!(store.session(Realm::Portal, bad, 11).unwrap(), None);
        }
    }

    #[test]
    fn sessions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .create_session(Realm::Admin, "admin", 10, 60)
                .unwrap()
                .id
        };
        let store = Store::open(dir.path()).unwrap();
        assert!(store.session(Realm::Admin, &id, 11).unwrap().is_some());
    }
}
