//! The SQLite file: opening it durably, migrating its schema, loading what it holds.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::StoreError;

/// The database file inside the data directory.
pub(crate) const FILE_NAME: &str = "portcullis.db";

/// Schema migrations; `PRAGMA user_version` is how many have been applied.
/// Append only: never edit one that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) STRICT;
     INSERT INTO meta (key, value) VALUES ('revision', 0);
     CREATE TABLE entities (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         body TEXT NOT NULL,
         version INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         PRIMARY KEY (kind, id)
     ) STRICT;
     CREATE TABLE global_policy (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         xml TEXT NOT NULL,
         version INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE gateway_keys (
         gateway_id TEXT PRIMARY KEY,
         primary_key TEXT NOT NULL,
         secondary_key TEXT NOT NULL
     ) STRICT;
     CREATE TABLE instances (
         gateway_id TEXT NOT NULL,
         instance_id TEXT NOT NULL,
         heartbeat TEXT NOT NULL,
         last_heartbeat INTEGER NOT NULL,
         PRIMARY KEY (gateway_id, instance_id)
     ) STRICT;
     CREATE TABLE audit (
         revision INTEGER PRIMARY KEY,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         resource TEXT NOT NULL,
         detail TEXT
     ) STRICT;
     CREATE TABLE admin_tokens (
         digest BLOB PRIMARY KEY,
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 2: the OpenAPI document last imported into each API.
    "CREATE TABLE api_documents (
         api_id TEXT PRIMARY KEY,
         document TEXT NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;",
    // 3: browser sessions of the admin console and the developer portal (only the
    // SHA-256 of a session id is kept), and portal users' password hashes.
    "CREATE TABLE web_sessions (
         id_digest BLOB PRIMARY KEY,
         realm TEXT NOT NULL,
         subject TEXT NOT NULL,
         csrf TEXT NOT NULL,
         created_unix INTEGER NOT NULL,
         expires_unix INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX web_sessions_subject ON web_sessions (realm, subject);
     CREATE TABLE portal_credentials (
         user_id TEXT PRIMARY KEY,
         email TEXT NOT NULL UNIQUE,
         password_hash TEXT NOT NULL,
         created_unix INTEGER NOT NULL
     ) STRICT;",
    // 4: the store's identity, made when the database is created (the row is
    // written at open, from the OS random source): snapshots carry it, so a
    // gateway can tell this store's content from another's at the same revision.
    "CREATE TABLE store_identity (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         store_id TEXT NOT NULL
     ) STRICT;",
];

/// Opens `<dir>/portcullis.db` (creating both) with durable settings, and migrates it.
pub(crate) fn open(dir: &Path) -> Result<Connection, StoreError> {
    crate::data_dir::create_private_dir(dir)?;
    let path = dir.join(FILE_NAME);
    crate::data_dir::precreate_private_file(&path)?;
    let conn = Connection::open(&path)?;
    setup(conn).map_err(|e| match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            StoreError::Io(std::io::Error::other(format!(
                "{} is in use by another process (one management plane per data directory)",
                path.display()
            )))
        }
        other => other,
    })
}

fn setup(mut conn: Connection) -> Result<Connection, StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // One management plane per data directory: the in-memory view must be the only writer.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "cannot switch the database to WAL mode (it is in {mode} mode)"
        )));
    }
    // FULL: a commit is on disk (the WAL fsynced) before it returns, so an accepted
    // write survives a crash or power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Applies the migrations not applied yet, all in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this build's {}",
            MIGRATIONS.len()
        )));
    }
    if applied == MIGRATIONS.len() {
        return Ok(());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tracing::info!(version = index + 1, "applying store migration");
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

/// The schema version recorded in the file.
#[cfg(test)]
pub(crate) fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// The store's identity, if one was made.
pub(crate) fn store_id(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT store_id FROM store_identity WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records `store_id` as the store's identity, replacing any earlier one.
pub(crate) fn set_store_id(conn: &Connection, store_id: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO store_identity (id, store_id) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET store_id = excluded.store_id",
        [store_id],
    )?;
    Ok(())
}

/// The stored revision counter.
pub(crate) fn revision(conn: &Connection) -> Result<u64, StoreError> {
    let value: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
        r.get(0)
    })?;
    to_u64(value)
}

/// Every entity row: kind, id, body, version.
pub(crate) fn entity_rows(
    conn: &Connection,
) -> Result<Vec<(String, String, String, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT kind, id, body, version FROM entities")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, id, body, version) = row?;
        out.push((kind, id, body, to_u64(version)?));
    }
    Ok(out)
}

/// The global policy document and its version, if there is one.
pub(crate) fn global_policy(conn: &Connection) -> Result<Option<(String, u64)>, StoreError> {
    let row = conn
        .query_row(
            "SELECT xml, version FROM global_policy WHERE id = 1",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?;
    row.map(|(xml, v)| Ok((xml, to_u64(v)?))).transpose()
}

/// Every gateway's keys: id, primary, secondary.
pub(crate) fn gateway_key_rows(
    conn: &Connection,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT gateway_id, primary_key, secondary_key FROM gateway_keys")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every API's imported OpenAPI document (JSON text), by API id.
pub(crate) fn api_document_rows(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT api_id, document FROM api_documents")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every stored admin token digest.
pub(crate) fn admin_digests(conn: &Connection) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut stmt = conn.prepare("SELECT digest FROM admin_tokens")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let bytes = row?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("an admin token digest is not 32 bytes".into()))?;
        out.push(digest);
    }
    Ok(out)
}

/// A stored integer that must not be negative.
pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative number {value}")))
}

/// A number for an INTEGER column (SQLite integers are signed 64-bit).
pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{value} is too large to store")))
}
