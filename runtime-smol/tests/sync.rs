//! Connected mode of the smol gateway against a fake management plane on
//! loopback (the configuration endpoint with ETag, 304 and long poll, and
//! heartbeats), the same shape as the tokio adapter's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use portcullis_core::sync::backoff::{BackoffPolicy, Jitter};
use portcullis_core::sync::token;
use portcullis_runtime_smol::{
    BackupKey, BackupOptions, BackupStatus, Connectivity, Gateway, GatewayOptions, Health,
    ManagedOptions, SyncStatus, SyncTiming, BACKUP_FILE_NAME,
};
use serde_json::Value;
use smol::io::AsyncWriteExt;
use smol::Async;
use support::*;

const KEY: [u8; 32] = [0x5c; 32];
const GATEWAY_ID: &str = "gw-1";

// ---------------------------------------------------------------------------
// The backend: answers every request with its target
// ---------------------------------------------------------------------------

fn backend() -> SocketAddr {
    let listener = Async::<TcpListener>::bind(any_port()).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    smol::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            smol::spawn(async move {
                let mut buf = BytesMut::new();
                while let Some(req) = read_request(&mut stream, &mut buf).await {
                    let out = response(200, &[], req.target.as_bytes());
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

/// A snapshot with `/api/*` forwarded to `backend` under `/r<revision>`: the
/// answer's body tells which revision served it.
fn snapshot(revision: u64, backend: SocketAddr) -> String {
    serde_json::json!({
        "revision": revision,
        "apis": [{
            "id": "api", "path": "api",
            "serviceUrl": format!("http://{backend}/r{revision}"),
            "subscriptionRequired": false,
            "operations": [{"id": "any", "method": "GET", "urlTemplate": "/*"}]
        }]
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// The fake management plane
// ---------------------------------------------------------------------------

/// What the fake management plane serves and saw; outlives restarts.
struct State {
    /// The revision and body of the configuration endpoint (revision 0: none yet).
    current: Mutex<(u64, String)>,
    revision: AtomicU64,
    authorization: String,
    /// Long polls being held now.
    holding: AtomicUsize,
    fetches: Mutex<Vec<Request>>,
    heartbeats: Mutex<Vec<Value>>,
    /// Whether the server is up (connections are dropped when it is not).
    up: AtomicBool,
}

struct Management {
    addr: SocketAddr,
    state: Arc<State>,
    _task: smol::Task<()>,
}

impl Management {
    fn start(token: &str) -> Management {
        let state = Arc::new(State {
            current: Mutex::new((0, String::new())),
            revision: AtomicU64::new(0),
            authorization: token.to_owned(),
            holding: AtomicUsize::new(0),
            fetches: Mutex::new(Vec::new()),
            heartbeats: Mutex::new(Vec::new()),
            up: AtomicBool::new(true),
        });
        let listener = Async::<TcpListener>::bind(any_port()).unwrap();
        Management::serve(listener, state)
    }

    fn serve(listener: Async<TcpListener>, state: Arc<State>) -> Management {
        let addr = listener.get_ref().local_addr().unwrap();
        state.up.store(true, Ordering::SeqCst);
        let st = state.clone();
        let task = smol::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                smol::spawn(connection(stream, st.clone())).detach();
            }
        });
        Management {
            addr,
            state,
            _task: task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn publish(&self, revision: u64, body: String) {
        *self.state.current.lock().unwrap() = (revision, body);
        self.state.revision.store(revision, Ordering::SeqCst);
    }

    /// Goes away: the listener closes (the task is dropped) and every open
    /// connection is dropped at its next step.
    fn stop(self) -> (SocketAddr, Arc<State>) {
        self.state.up.store(false, Ordering::SeqCst);
        (self.addr, self.state)
    }

    /// Comes back at the same address with the same state.
    async fn restart(addr: SocketAddr, state: Arc<State>) -> Management {
        let listener = within("rebind", async {
            loop {
                match Async::<TcpListener>::bind(addr) {
                    Ok(l) => return l,
                    Err(_) => sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        Management::serve(listener, state)
    }

    fn fetches(&self) -> Vec<Request> {
        self.state.fetches.lock().unwrap().clone()
    }

    fn heartbeats(&self) -> Vec<Value> {
        self.state.heartbeats.lock().unwrap().clone()
    }
}

async fn connection(mut stream: Async<TcpStream>, state: Arc<State>) {
    let mut buf = BytesMut::new();
    while let Some(req) = read_request(&mut stream, &mut buf).await {
        let Some(out) = answer(&req, &state).await else {
            return;
        };
        if !state.up.load(Ordering::SeqCst) || stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn problem(status: u16, detail: &str) -> Vec<u8> {
    let body = serde_json::json!({"type": "about:blank", "title": "error", "status": status, "detail": detail});
    response(
        status,
        &[("Content-Type", "application/problem+json".into())],
        body.to_string().as_bytes(),
    )
}

/// The answer, or `None` when the server went down meanwhile.
async fn answer(req: &Request, state: &State) -> Option<Vec<u8>> {
    if !state.up.load(Ordering::SeqCst) {
        return None;
    }
    if req.header("authorization") != Some(state.authorization.as_str()) {
        return Some(problem(401, "gateway token expired"));
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    if req.method == "POST" && path == format!("/gateways/{GATEWAY_ID}/heartbeat") {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        state.heartbeats.lock().unwrap().push(body);
        return Some(response(204, &[], b""));
    }
    if req.method != "GET" || path != format!("/gateways/{GATEWAY_ID}/configuration") {
        return Some(problem(404, "not found"));
    }
    state.fetches.lock().unwrap().push(req.clone());
    let wait: Option<u64> = query.strip_prefix("wait=").and_then(|w| w.parse().ok());
    let asked = req
        .header("if-none-match")
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok());
    let current = state.revision.load(Ordering::SeqCst);
    if current == 0 {
        return Some(problem(503, "no configuration yet"));
    }
    if asked == Some(current) {
        if let Some(secs) = wait {
            state.holding.fetch_add(1, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(secs.min(60));
            while Instant::now() < until
                && state.revision.load(Ordering::SeqCst) == current
                && state.up.load(Ordering::SeqCst)
            {
                sleep(Duration::from_millis(5)).await;
            }
            state.holding.fetch_sub(1, Ordering::SeqCst);
            if !state.up.load(Ordering::SeqCst) {
                return None;
            }
        }
    }
    let (revision, body) = state.current.lock().unwrap().clone();
    let etag = format!("\"{revision}\"");
    Some(if asked == Some(revision) {
        response(304, &[("ETag", etag)], b"")
    } else {
        response(
            200,
            &[("ETag", etag), ("Content-Type", "application/json".into())],
            body.as_bytes(),
        )
    })
}

// ---------------------------------------------------------------------------
// Gateways
// ---------------------------------------------------------------------------

fn token() -> String {
    token::sign(GATEWAY_ID, 4_000_000_000, b"gateway key")
}

/// Fast timing for tests: 300 ms heartbeats, backoff from 50 ms to 300 ms.
fn timing() -> SyncTiming {
    SyncTiming {
        poll_interval: Duration::from_secs(1),
        long_poll_wait: Duration::from_secs(30),
        long_poll_retry: Duration::from_secs(600),
        request_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(300),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
            jitter: Jitter::Equal,
        },
    }
}

fn managed(url: &str, backup: Option<(&Path, [u8; 32])>) -> ManagedOptions {
    let mut m = ManagedOptions::new(url, token());
    m.instance_id = "instance-a".into();
    m.hostname = "test-host".into();
    m.timing = timing();
    m.backup = backup.map(|(dir, key)| BackupOptions {
        dir: dir.to_owned(),
        key: BackupKey::from_bytes(key),
    });
    m
}

async fn start(options: ManagedOptions) -> Gateway {
    let mut o = GatewayOptions::managed(options);
    o.listen = any_port();
    o.ops_listen = Some(any_port());
    o.shutdown_grace = Duration::from_secs(2);
    within("gateway start", Gateway::start(o))
        .await
        .expect("gateway starts")
}

async fn readyz(gw: &Gateway) -> u16 {
    get(gw.ops_addr().unwrap(), "/readyz").await.status
}

fn status(gw: &Gateway) -> SyncStatus {
    gw.sync_status().expect("connected mode")
}

/// Waits until the gateway answers `/api/hello` from revision `revision`.
async fn serves(gw: &Gateway, revision: u64) {
    let want = format!("/r{revision}/hello");
    let served = smol::future::or(
        async {
            loop {
                let a = get(gw.local_addr(), "/api/hello").await;
                if a.status == 200 && a.body_str() == want {
                    return true;
                }
                sleep(Duration::from_millis(10)).await;
            }
        },
        async {
            sleep(WAIT).await;
            false
        },
    )
    .await;
    assert!(
        served,
        "revision {revision} not served; sync status {:?}",
        gw.sync_status()
    );
}

/// Asserts the gateway is not ready and answers 503, for a while.
async fn stays_not_ready(gw: &Gateway) {
    for _ in 0..10 {
        assert_eq!(readyz(gw).await, 503);
        assert_eq!(get(gw.local_addr(), "/api/hello").await.status, 503);
        sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(gw.revision(), None);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn ready_after_the_first_fetch_and_proxies_per_the_fetched_config() {
    smol::block_on(async {
        let backend = backend();
        let mgmt = Management::start(&token());
        let gw = start(managed(&mgmt.url(), None)).await;
        stays_not_ready(&gw).await;
        assert_eq!(status(&gw).health, Health::NotReady);

        mgmt.publish(1, snapshot(1, backend));
        serves(&gw, 1).await;
        assert_eq!(readyz(&gw).await, 200);
        let s = status(&gw);
        assert_eq!(s.applied_revision, Some(1));
        assert_eq!(s.connectivity, Connectivity::Connected);
        assert_eq!(s.backup, BackupStatus::None);
        wait_until("a long poll with the ETag", || {
            mgmt.fetches().iter().any(|f| {
                f.header("if-none-match") == Some("\"1\"") && f.target.ends_with("?wait=30")
            })
        })
        .await;
        wait_until("heartbeats", || {
            mgmt.heartbeats()
                .iter()
                .any(|b| b["appliedRevision"] == 1 && b["instanceId"] == "instance-a")
        })
        .await;
        within("shutdown", gw.shutdown()).await;
    })
}

#[test]
fn a_change_arrives_by_long_poll() {
    smol::block_on(async {
        let backend = backend();
        let mgmt = Management::start(&token());
        mgmt.publish(1, snapshot(1, backend));
        let mut options = managed(&mgmt.url(), None);
        // Polling alone would take an hour.
        options.timing.poll_interval = Duration::from_secs(3600);
        let gw = start(options).await;
        serves(&gw, 1).await;
        for revision in 2..=3 {
            wait_until("a long poll is held", || {
                mgmt.state.holding.load(Ordering::SeqCst) > 0
            })
            .await;
            let changed = Instant::now();
            mgmt.publish(revision, snapshot(revision, backend));
            serves(&gw, revision).await;
            let took = changed.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "revision {revision} took {took:?}"
            );
        }
        within("shutdown", gw.shutdown()).await;
    })
}

#[test]
fn keeps_serving_through_an_outage_and_catches_up() {
    smol::block_on(async {
        let backend = backend();
        let mgmt = Management::start(&token());
        mgmt.publish(1, snapshot(1, backend));
        let gw = start(managed(&mgmt.url(), None)).await;
        serves(&gw, 1).await;

        let (addr, state) = mgmt.stop();
        wait_until("connectivity lost", || {
            status(&gw).connectivity == Connectivity::Disconnected
        })
        .await;
        for _ in 0..10 {
            let a = get(gw.local_addr(), "/api/hello").await;
            assert_eq!((a.status, a.body_str().as_str()), (200, "/r1/hello"));
        }
        assert_eq!(readyz(&gw).await, 200);
        assert_eq!(status(&gw).health, Health::Degraded);

        let mgmt = Management::restart(addr, state).await;
        mgmt.publish(3, snapshot(3, backend));
        serves(&gw, 3).await;
        wait_until("connected again", || {
            status(&gw).connectivity == Connectivity::Connected
        })
        .await;
        within("shutdown", gw.shutdown()).await;
    })
}

#[test]
fn a_restart_during_an_outage_serves_from_the_backup_at_once() {
    smol::block_on(async {
        let backend = backend();
        let dir = tempfile::tempdir().unwrap();
        let mgmt = Management::start(&token());
        mgmt.publish(7, snapshot(7, backend));
        let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
        serves(&gw, 7).await;
        wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
        assert!(dir.path().join(BACKUP_FILE_NAME).is_file());
        // Files only: `telemetry/` holds the upload buffer.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, [BACKUP_FILE_NAME], "no temporary file is left");
        within("shutdown", gw.shutdown()).await;
        let url = mgmt.url();
        drop(mgmt.stop());

        // Restarted while the management plane is down: serves at once.
        let started = Instant::now();
        let gw = start(managed(&url, Some((dir.path(), KEY)))).await;
        serves(&gw, 7).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(readyz(&gw).await, 200);
        assert_eq!(status(&gw).backup, BackupStatus::Loaded);
        wait_until("disconnected", || {
            status(&gw).connectivity == Connectivity::Disconnected
        })
        .await;
        within("shutdown", gw.shutdown()).await;

        // A backup written under another key is not served.
        let gw = start(managed(&url, Some((dir.path(), [0x11; 32])))).await;
        wait_until("backup rejected", || {
            matches!(status(&gw).backup, BackupStatus::Error(_))
        })
        .await;
        stays_not_ready(&gw).await;
        within("shutdown", gw.shutdown()).await;
    })
}

#[test]
fn without_a_backup_a_restart_stays_not_ready_until_the_server_returns() {
    smol::block_on(async {
        let backend = backend();
        let mgmt = Management::start(&token());
        mgmt.publish(2, snapshot(2, backend));
        let (addr, state) = mgmt.stop();
        let dir = tempfile::tempdir().unwrap();
        // An empty backup directory is no backup either.
        let gw = start(managed(&format!("http://{addr}"), Some((dir.path(), KEY)))).await;
        stays_not_ready(&gw).await;
        let s = status(&gw);
        assert_eq!(s.health, Health::NotReady);
        assert_eq!(s.connectivity, Connectivity::Disconnected);
        assert!(s.last_error.is_some());

        let _back = Management::restart(addr, state).await;
        serves(&gw, 2).await;
        assert_eq!(readyz(&gw).await, 200);
        wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
        within("shutdown", gw.shutdown()).await;
    })
}

#[test]
fn bad_settings_fail_at_start() {
    smol::block_on(async {
        for options in [
            ManagedOptions::new("ftp://x", token()),
            ManagedOptions::new("http://x", "not a token"),
        ] {
            let mut o = GatewayOptions::managed(options);
            o.listen = any_port();
            o.ops_listen = None;
            assert!(Gateway::start(o).await.is_err());
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut o = GatewayOptions::managed(managed(
            "http://127.0.0.1:1",
            Some((&file.path().join("sub"), KEY)),
        ));
        o.listen = any_port();
        o.ops_listen = None;
        let err = Gateway::start(o).await.err().expect("refused");
        assert!(err.to_string().contains("backup directory"), "{err}");
    })
}
