//! Store tests: reopening, migrations, the data directory, admin tokens, one store per directory, crashes, scale.

use super::*;

#[test]
fn reopening_keeps_everything() {
    let (dir, mut store) = open();
    seed(&mut store);
    store
        .put_policy(
            &PolicyScope::Global,
            GOOD_POLICY,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    store
        .put_policy(
            &PolicyScope::Operation("a1".into(), "get".into()),
            GOOD_POLICY,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    let token = store.ensure_admin_token(None, T0).unwrap().unwrap();
    let mut before = Vec::new();
    for kind in Kind::ALL {
        before.push(store.list(kind, 0, 1000).unwrap());
    }
    let revision = store.revision();
    let keys = store.gateway_keys("g1").unwrap();
    let secrets = store.subscription_secrets("s-all").unwrap();
    let config = store.gateway_config("g1").unwrap();
    let audit = store.audit(0, 1000).unwrap();
    let policy = store.get_policy(&PolicyScope::Global).unwrap();

    let mut store = reopen(&dir, store);
    assert_eq!(store.revision(), revision);
    for (kind, expected) in Kind::ALL.into_iter().zip(&before) {
        assert_eq!(&store.list(kind, 0, 1000).unwrap(), expected, "{kind:?}");
    }
    assert_eq!(store.gateway_keys("g1").unwrap(), keys);
    assert_eq!(store.subscription_secrets("s-all").unwrap(), secrets);
    assert_eq!(store.gateway_config("g1").unwrap(), config);
    assert_eq!(store.audit(0, 1000).unwrap(), audit);
    assert_eq!(store.get_policy(&PolicyScope::Global).unwrap(), policy);
    assert!(store.check_admin_token(&token));
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    // And it goes on from there.
    must_put(
        &mut store,
        Kind::Backend,
        "b2",
        json!({"url": "http://127.0.0.1:1/"}),
    );
    assert_eq!(store.revision(), revision + 1);
    assert_compiles(&store);
}

#[test]
fn migrations_are_idempotent() {
    let (dir, mut store) = open();
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    must_put(
        &mut store,
        Kind::Backend,
        "b",
        json!({"url": "http://127.0.0.1:1/"}),
    );
    db::migrate(&mut store.conn).unwrap();
    db::migrate(&mut store.conn).unwrap();
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    let store = reopen(&dir, store);
    let store = reopen(&dir, store);
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    assert_eq!(store.revision(), 1);
    assert!(store.get(Kind::Backend, "b").is_ok());
    drop(store);

    // A database from a newer build is refused rather than misread.
    let path = dir.path().join("data").join(db::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match Store::open(&dir.path().join("data")) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("99"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

const MIGRATIONS_LEN: i64 = db::MIGRATIONS.len() as i64;

#[test]
fn the_data_directory_is_created_and_durable_settings_are_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a").join("b");
    let store = Store::open(&data).unwrap();
    assert!(data.join(db::FILE_NAME).is_file());
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn admin_tokens() {
    let (dir, mut store) = open();
    assert!(
        !store.check_admin_token(""),
        "nothing is accepted before setup"
    );
    let token = store
        .ensure_admin_token(None, T0)
        .unwrap()
        .expect("created");
    assert_eq!(token.len(), 64);
    assert!(store.check_admin_token(&token));
    assert!(!store.check_admin_token(&token[1..]));
    assert!(!store.check_admin_token(""));
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    // Only the digest is stored.
    let stored: Vec<u8> = store
        .conn
        .query_row("SELECT digest FROM admin_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&token));

    // From the environment: that one only.
    let mut store = reopen(&dir, store);
    let env = "environment-token-0123";
    assert_eq!(store.ensure_admin_token(Some(env), T0).unwrap(), None);
    assert!(store.check_admin_token(env));
    assert!(!store.check_admin_token(&token));
    assert!(matches!(
        store.ensure_admin_token(Some("short"), T0),
        Err(StoreError::Invalid(_))
    ));
    // Without it again, the stored one is back.
    let mut store = reopen(&dir, store);
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    assert!(!store.check_admin_token(env));
}

#[test]
fn kinds_map_to_collections() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_collection(kind.collection()), Some(kind));
    }
    assert_eq!(
        Kind::from_collection("named-values"),
        Some(Kind::NamedValue)
    );
    assert_eq!(
        Kind::from_collection("policy-fragments"),
        Some(Kind::Fragment)
    );
    assert_eq!(Kind::from_collection("nope"), None);
}

#[test]
fn one_store_per_data_directory() {
    fn send<T: Send>() {}
    send::<Store>();
    let (dir, store) = open();
    let started = std::time::Instant::now();
    match Store::open(&dir.path().join("data")) {
        Err(StoreError::Io(e)) => assert!(e.to_string().contains("in use"), "{e}"),
        other => panic!("a second store on the same directory must be refused: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(store);
    Store::open(&dir.path().join("data")).unwrap();
}

/// Set in the child process of [`a_killed_process_loses_no_accepted_write`].
const CRASH_CHILD: &str = "PORTCULLIS_STORE_CRASH_CHILD";

#[test]
fn a_killed_process_loses_no_accepted_write() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    if let Ok(dir) = std::env::var(CRASH_CHILD) {
        // The child: write until killed, reporting each accepted write (straight to
        // stdout, past the test harness's capture).
        let mut store = Store::open(Path::new(&dir)).unwrap();
        for i in 0..10_000 {
            let body = json!({"url": format!("http://127.0.0.1:{}/", 1000 + i)});
            must_put(&mut store, Kind::Backend, &format!("b{i}"), body);
            let mut out = std::io::stdout().lock();
            writeln!(out, "accepted {i}").unwrap();
            out.flush().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::durability::a_killed_process_loses_no_accepted_write",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut accepted = 0;
    let mut killed = false;
    // Reads to the end: lines the child wrote before it died still count.
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("accepted ") {
            accepted = n.parse::<u64>().unwrap() + 1;
            if accepted >= 40 && !killed {
                // SIGKILL: no destructor, no orderly close of the database.
                child.kill().unwrap();
                killed = true;
            }
        }
    }
    child.wait().unwrap();
    assert!(accepted >= 40, "the child stopped early");
    let store = Store::open(&data).unwrap();
    // Every acknowledged write is there; at most the one in flight may be too.
    assert!(
        store.revision() >= accepted,
        "{} < {accepted}",
        store.revision()
    );
    assert!(store.revision() <= accepted + 1);
    for i in 0..accepted {
        let b = store.get(Kind::Backend, &format!("b{i}")).unwrap();
        assert_eq!(b.body["url"], format!("http://127.0.0.1:{}/", 1000 + i));
    }
    let (_, total) = store.list(Kind::Backend, 0, 0).unwrap();
    assert_eq!(total as u64, store.revision());
    assert_eq!(store.audit(0, 0).unwrap().1 as u64, store.revision());
}

/// Write and fetch costs at 1,000 APIs × 10 operations with policies; run with
/// `cargo test --release -p portcullis-management -- --ignored --nocapture thousand`.
#[test]
#[ignore]
fn thousand_apis() {
    use std::time::Instant;
    let (_dir, mut store) = open();
    let api_policy = GOOD_POLICY;
    let op_policy = r#"<policies><inbound><base /><set-header name="X-Op" exists-action="override"><value>@(context.Request.Method)</value></set-header></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let started = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    let mut ids = Vec::new();
    for i in 0..1000 {
        let ops: Vec<Value> = (0..10)
            .map(|o| json!({"id": format!("op{o}"), "method": "GET", "urlTemplate": format!("/r{o}"), "policy": op_policy}))
            .collect();
        let body = json!({"path": format!("api{i}"), "serviceUrl": "http://127.0.0.1:9000/", "operations": ops, "policy": api_policy});
        let t = Instant::now();
        must_put(&mut store, Kind::Api, &format!("api{i}"), body);
        slowest = slowest.max(t.elapsed());
        ids.push(format!("api{i}"));
    }
    println!(
        "seeded 1,000 APIs in {:?}, slowest write {slowest:?}",
        started.elapsed()
    );
    let t = Instant::now();
    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "x"}, "apis": ids}),
    );
    println!("gateway write: {:?}", t.elapsed());
    let t = Instant::now();
    must_put(
        &mut store,
        Kind::Api,
        "api500",
        json!({"path": "api500", "serviceUrl": "http://127.0.0.1:9001/"}),
    );
    println!("API replace at 1,000: {:?}", t.elapsed());
    let t = Instant::now();
    must_put(&mut store, Kind::NamedValue, "nv", json!({"value": "x"}));
    println!("named value write (every document): {:?}", t.elapsed());
    let t = Instant::now();
    let config = store.gateway_config("g").unwrap();
    println!(
        "snapshot build: {:?}, {} bytes",
        t.elapsed(),
        config.json.len()
    );
    let t = Instant::now();
    store.gateway_config("g").unwrap();
    println!("snapshot cached: {:?}", t.elapsed());
    let t = Instant::now();
    assert_compiles(&store);
    println!("full compile: {:?}", t.elapsed());
}
