//! Connected mode against a fake management plane on loopback: the configuration
//! endpoint (ETag, 304, long poll) and heartbeats, written here; the real one is
//! `management/`, tested with the gateway end to end in the workspace's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::sync::backoff::{BackoffPolicy, Jitter};
use portcullis_core::sync::token;
use portcullis_runtime_tokio::{
    BackupKey, BackupOptions, BackupStatus, Connectivity, Gateway, GatewayOptions, Health,
    ManagedOptions, SyncTiming, BACKUP_FILE_NAME,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The hang guard of every wait.
const WAIT: Duration = Duration::from_secs(20);
const KEY: [u8; 32] = [0x5c; 32];

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1, just enough
// ---------------------------------------------------------------------------

/// One request as a server read it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `None` at end of stream.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn response(status: u16, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// A response as a client read it.
struct Answer {
    status: u16,
    body: String,
}

/// `GET path` on a fresh connection (`Connection: close`).
async fn get(addr: SocketAddr, path: &str) -> Answer {
    let mut stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within("response", stream.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Answer { status, body }
}

// ---------------------------------------------------------------------------
// The backend: answers every request with its path
// ---------------------------------------------------------------------------

async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut stream, &mut buf).await {
                    let out = response(200, &[], &req.target);
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A snapshot with one API, `/api/*`, forwarded to `backend` under `/r<revision>`:
/// the answer's body tells which revision served it.
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

/// A snapshot whose policy does not compile.
fn bad_snapshot(revision: u64) -> String {
    serde_json::json!({
        "revision": revision,
        "policy": "<policies><inbound><no-such-policy /></inbound></policies>"
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// The fake management plane
// ---------------------------------------------------------------------------

const GATEWAY_ID: &str = "gw-1";

/// What the fake management plane serves and what it saw; outlives restarts.
struct State {
    /// The revision and body of the configuration endpoint (revision 0: none yet).
    current: Mutex<(u64, String)>,
    revision: watch::Sender<u64>,
    authorization: String,
    /// Answer every request with 401.
    refuse: AtomicBool,
    /// Answer long polls at once.
    ignore_wait: AtomicBool,
    /// Long polls being held now.
    holding: AtomicUsize,
    fetches: Mutex<Vec<Request>>,
    heartbeats: Mutex<Vec<(Request, Value)>>,
}

struct Management {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Management {
    /// A management plane that knows `token` and serves nothing yet.
    async fn start(token: &str) -> Management {
        let state = Arc::new(State {
            current: Mutex::new((0, String::new())),
            revision: watch::channel(0).0,
            authorization: token.to_owned(),
            refuse: AtomicBool::new(false),
            ignore_wait: AtomicBool::new(false),
            holding: AtomicUsize::new(0),
            fetches: Mutex::new(Vec::new()),
            heartbeats: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Management::serve(listener, state)
    }

    fn serve(listener: TcpListener, state: Arc<State>) -> Management {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (st, token) = (st.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = connection(stream, st) => {}
                    }
                });
            }
        });
        Management { addr, state, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` as revision `revision` from now on.
    fn publish(&self, revision: u64, body: String) {
        *self.state.current.lock().unwrap() = (revision, body);
        self.state.revision.send_replace(revision);
    }

    /// Goes away: the listener and every connection close.
    fn stop(&self) {
        self.stop.cancel();
    }

    /// Comes back at the same address, with the same state.
    async fn restart(&self) -> Management {
        let listener = within("rebind", async {
            loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => return l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        Management::serve(listener, self.state.clone())
    }

    fn heartbeats(&self) -> Vec<(Request, Value)> {
        self.state.heartbeats.lock().unwrap().clone()
    }

    fn fetches(&self) -> Vec<Request> {
        self.state.fetches.lock().unwrap().clone()
    }
}

async fn connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut stream, &mut buf).await {
        let out = answer(&req, &state).await;
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn answer(req: &Request, state: &State) -> Vec<u8> {
    let problem = |status: u16, detail: &str| {
        let body = serde_json::json!({"type": "about:blank", "title": "error", "status": status, "detail": detail});
        response(
            status,
            &[("Content-Type", "application/problem+json".into())],
            &body.to_string(),
        )
    };
    if state.refuse.load(Ordering::SeqCst)
        || req.header("authorization") != Some(state.authorization.as_str())
    {
        return problem(401, "gateway token expired");
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let config_path = format!("/gateways/{GATEWAY_ID}/configuration");
    let heartbeat_path = format!("/gateways/{GATEWAY_ID}/heartbeat");
    if req.method == "POST" && path == heartbeat_path {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        state.heartbeats.lock().unwrap().push((req.clone(), body));
        return response(204, &[], "");
    }
    if req.method != "GET" || path != config_path {
        return problem(404, "not found");
    }
    state.fetches.lock().unwrap().push(req.clone());
    let wait: Option<u64> = query
        .strip_prefix("wait=")
        .and_then(|w| w.parse().ok())
        .filter(|_| !state.ignore_wait.load(Ordering::SeqCst));
    let asked = req
        .header("if-none-match")
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok());
    let mut revision_rx = state.revision.subscribe();
    let current = *revision_rx.borrow_and_update();
    if current == 0 {
        return problem(503, "no configuration yet");
    }
    if asked == Some(current) {
        if let Some(secs) = wait {
            state.holding.fetch_add(1, Ordering::SeqCst);
            let _ = tokio::time::timeout(Duration::from_secs(secs.min(60)), async {
                while revision_rx.changed().await.is_ok() {
                    if *revision_rx.borrow() != current {
                        return;
                    }
                }
            })
            .await;
            state.holding.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let (revision, body) = state.current.lock().unwrap().clone();
    let etag = format!("\"{revision}\"");
    if asked == Some(revision) {
        response(304, &[("ETag", etag)], "")
    } else {
        response(
            200,
            &[("ETag", etag), ("Content-Type", "application/json".into())],
            &body,
        )
    }
}

// ---------------------------------------------------------------------------
// Gateways
// ---------------------------------------------------------------------------

/// The gateway's token (the fake management plane checks it verbatim).
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
    o.listen = "127.0.0.1:0".parse().unwrap();
    o.ops_listen = Some("127.0.0.1:0".parse().unwrap());
    o.shutdown_grace = Duration::from_secs(2);
    within("gateway start", Gateway::start(o))
        .await
        .expect("gateway starts")
}

async fn readyz(gw: &Gateway) -> u16 {
    get(gw.ops_addr().unwrap(), "/readyz").await.status
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Waits until the gateway answers `/api/hello` from revision `revision`.
async fn serves(gw: &Gateway, revision: u64) {
    let want = format!("/r{revision}/hello");
    let served = tokio::time::timeout(WAIT, async {
        loop {
            let a = get(gw.local_addr(), "/api/hello").await;
            if a.status == 200 && a.body == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if served.is_err() {
        panic!(
            "revision {revision} not served; sync status {:?}",
            gw.sync_status()
        );
    }
}

fn status(gw: &Gateway) -> portcullis_runtime_tokio::SyncStatus {
    gw.sync_status().expect("connected mode")
}

/// Asserts the gateway is not ready and answers 503, for a while.
async fn stays_not_ready(gw: &Gateway) {
    for _ in 0..10 {
        assert_eq!(readyz(gw).await, 503);
        assert_eq!(get(gw.local_addr(), "/api/hello").await.status, 503);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(gw.revision(), None);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_the_first_fetch_and_proxies_per_the_fetched_config() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    // Nothing to serve yet: the gateway waits, not ready.
    let gw = start(managed(&mgmt.url(), None)).await;
    stays_not_ready(&gw).await;
    assert_eq!(status(&gw).health, Health::NotReady);

    mgmt.publish(1, snapshot(1, backend));
    serves(&gw, 1).await;
    assert_eq!(readyz(&gw).await, 200);
    assert_eq!(gw.revision(), Some(1));
    let s = status(&gw);
    assert_eq!(s.applied_revision, Some(1));
    assert_eq!(s.connectivity, Connectivity::Connected);
    assert_eq!(s.backup, BackupStatus::None);
    // The fetches carried the token; once a revision is in force, as ETag.
    wait_until("a long poll with the ETag", || {
        mgmt.fetches()
            .iter()
            .any(|f| f.header("if-none-match") == Some("\"1\"") && f.target.ends_with("?wait=30"))
    })
    .await;
    assert!(mgmt.fetches().iter().all(|f| f
        .header("authorization")
        .is_some_and(|a| a.starts_with("GatewayKey gw-1&"))));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_arrives_by_long_poll_within_a_second() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    mgmt.publish(1, snapshot(1, backend));
    let mut options = managed(&mgmt.url(), None);
    // Polling alone would take an hour.
    options.timing.poll_interval = Duration::from_secs(3600);
    let gw = start(options).await;
    serves(&gw, 1).await;
    for revision in 2..=4 {
        wait_until("a long poll is held", || {
            mgmt.state.holding.load(Ordering::SeqCst) > 0
        })
        .await;
        let changed = Instant::now();
        mgmt.publish(revision, snapshot(revision, backend));
        serves(&gw, revision).await;
        let took = changed.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "revision {revision} took {took:?}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_wait_is_polled_not_hammered() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    mgmt.publish(1, snapshot(1, backend));
    mgmt.state.ignore_wait.store(true, Ordering::SeqCst);
    let gw = start(managed(&mgmt.url(), None)).await;
    serves(&gw, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The first fetch, three long polls answered at once (one early answer could
    // be a restart), then a poll a second later.
    let n = mgmt.fetches().len();
    assert!((4..=6).contains(&n), "{n} fetches");
    mgmt.publish(2, snapshot(2, backend));
    serves(&gw, 2).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_keeps_serving_through_an_outage_and_catches_up() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    mgmt.publish(1, snapshot(1, backend));
    let gw = start(managed(&mgmt.url(), None)).await;
    serves(&gw, 1).await;

    mgmt.stop();
    let until = Instant::now() + Duration::from_secs(1);
    let mut served = 0;
    while Instant::now() < until {
        let a = get(gw.local_addr(), "/api/hello").await;
        assert_eq!((a.status, a.body.as_str()), (200, "/r1/hello"));
        served += 1;
    }
    assert!(served > 10);
    wait_until("connectivity lost", || {
        status(&gw).connectivity == Connectivity::Disconnected
    })
    .await;
    assert_eq!(readyz(&gw).await, 200);
    assert_eq!(status(&gw).health, Health::Degraded);

    // Changes made meanwhile arrive when it is back.
    mgmt.publish(3, snapshot(3, backend));
    let _back = mgmt.restart().await;
    serves(&gw, 3).await;
    wait_until("connectivity restored", || {
        status(&gw).connectivity == Connectivity::Connected
    })
    .await;
    assert_eq!(status(&gw).health, Health::Healthy);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_outage_serves_from_the_backup_at_once() {
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let mgmt = Management::start(&token()).await;
    mgmt.publish(7, snapshot(7, backend));
    let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
    serves(&gw, 7).await;
    wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
    assert!(dir.path().join(BACKUP_FILE_NAME).is_file());
    gw.shutdown().await;
    mgmt.stop();

    // Restarted while the management plane is down: serves at once from the backup.
    let started = Instant::now();
    let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
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
    gw.shutdown().await;

    // Also when the management plane's host name does not resolve.
    let gw = start(managed(
        "http://management.invalid:8443",
        Some((dir.path(), KEY)),
    ))
    .await;
    serves(&gw, 7).await;
    assert_eq!(readyz(&gw).await, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backup_a_restart_stays_not_ready_until_the_server_returns() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    mgmt.publish(2, snapshot(2, backend));
    mgmt.stop();
    let dir = tempfile::tempdir().unwrap();
    // An empty backup directory is no backup either.
    let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
    stays_not_ready(&gw).await;
    let s = status(&gw);
    assert_eq!(s.health, Health::NotReady);
    assert_eq!(s.connectivity, Connectivity::Disconnected);
    assert!(s.last_error.is_some());

    let _back = mgmt.restart().await;
    serves(&gw, 2).await;
    assert_eq!(readyz(&gw).await, 200);
    wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_foreign_backup_is_rejected_and_not_served() {
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let mgmt = Management::start(&token()).await;
    mgmt.publish(5, snapshot(5, backend));
    let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
    serves(&gw, 5).await;
    wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
    gw.shutdown().await;
    mgmt.stop();
    let path = dir.path().join(BACKUP_FILE_NAME);
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x04;
    let cases = [
        (flipped, KEY, "checksum"),
        (good[..good.len() - 5].to_vec(), KEY, "truncated"),
        (good.clone(), [0x11; 32], "wrong backup key"),
    ];
    for (bytes, key, reason) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let gw = start(managed(&mgmt.url(), Some((dir.path(), key)))).await;
        wait_until("backup rejected", || {
            matches!(status(&gw).backup, BackupStatus::Error(_))
        })
        .await;
        let BackupStatus::Error(text) = status(&gw).backup else {
            unreachable!()
        };
        assert!(text.contains(reason), "{reason}: {text}");
        stays_not_ready(&gw).await;
        gw.shutdown().await;
    }

    // Back online, a gateway that rejected its backup recovers and replaces it.
    std::fs::write(&path, &good[..10]).unwrap();
    let back = mgmt.restart().await;
    let gw = start(managed(&back.url(), Some((dir.path(), KEY)))).await;
    serves(&gw, 5).await;
    wait_until("backup saved", || status(&gw).backup == BackupStatus::Saved).await;
    assert_eq!(std::fs::read(&path).unwrap().len(), good.len());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_arrive_with_the_right_fields() {
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let mgmt = Management::start(&token()).await;
    mgmt.publish(3, snapshot(3, backend));
    let gw = start(managed(&mgmt.url(), Some((dir.path(), KEY)))).await;
    serves(&gw, 3).await;
    wait_until("heartbeats", || {
        mgmt.heartbeats()
            .iter()
            .filter(|(_, b)| b["backup"] == "saved")
            .count()
            >= 2
    })
    .await;
    let (req, body) = mgmt.heartbeats().pop().unwrap();
    assert_eq!(req.target, "/gateways/gw-1/heartbeat");
    assert!(req
        .header("authorization")
        .is_some_and(|a| a.starts_with("GatewayKey gw-1&")));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(body["instanceId"], "instance-a");
    assert_eq!(body["hostname"], "test-host");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["appliedRevision"], 3);
    assert!(body["uptimeSeconds"].is_u64());
    assert_eq!(body["health"], "healthy");
    assert_eq!(body["connectivity"], "connected");
    assert_eq!(body["compileErrors"], serde_json::json!([]));
    assert_eq!(body["backup"], "saved");

    // A snapshot that does not compile: kept out, reported in the next heartbeat.
    mgmt.publish(4, bad_snapshot(4));
    wait_until("the compile error is reported", || {
        mgmt.heartbeats().iter().any(|(_, b)| {
            b["compileErrors"][0]
                .as_str()
                .is_some_and(|e| e.starts_with("revision 4: ") && e.contains("no-such-policy"))
        })
    })
    .await;
    let (_, body) = mgmt.heartbeats().pop().unwrap();
    assert_eq!(body["appliedRevision"], 3);
    assert_eq!(body["health"], "degraded");
    serves(&gw, 3).await;
    assert_eq!(gw.revision(), Some(3));
    // Not refetched in a tight loop: about one poll a second.
    let before = mgmt.fetches().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let polls = mgmt.fetches().len() - before;
    assert!(polls <= 3, "{polls} fetches in 1.5 s");
    // Fixed: applied, errors cleared.
    mgmt.publish(5, snapshot(5, backend));
    serves(&gw, 5).await;
    assert!(status(&gw).compile_errors.is_empty());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_keeps_the_gateway_serving() {
    let backend = backend().await;
    let mgmt = Management::start(&token()).await;
    mgmt.publish(1, snapshot(1, backend));
    let gw = start(managed(&mgmt.url(), None)).await;
    serves(&gw, 1).await;
    mgmt.state.refuse.store(true, Ordering::SeqCst);
    // Wake the long poll so the next fetch meets the refusal.
    mgmt.publish(2, snapshot(2, backend));
    wait_until("the refusal is seen", || {
        status(&gw)
            .last_error
            .is_some_and(|e| e.contains("gateway token expired"))
    })
    .await;
    let a = get(gw.local_addr(), "/api/hello").await;
    assert_eq!(a.status, 200);
    assert!(a.body == "/r1/hello" || a.body == "/r2/hello", "{}", a.body);
    mgmt.state.refuse.store(false, Ordering::SeqCst);
    serves(&gw, 2).await;
    wait_until("connected again", || {
        status(&gw).connectivity == Connectivity::Connected
    })
    .await;
    gw.shutdown().await;
}

#[test]
fn debug_output_keeps_secrets() {
    let token = token();
    let signature = token.rsplit('&').next().unwrap();
    let text = format!("{:?}", managed("http://m", Some((Path::new("/b"), KEY))));
    assert!(!text.contains(signature), "{text}");
    assert!(text.contains("GatewayKey gw-1&4000000000&"), "{text}");
    assert!(text.contains("BackupKey(..)"), "{text}");
}

#[tokio::test]
async fn bad_settings_fail_at_start() {
    let bad = [
        ManagedOptions::new("ftp://x", token()),
        ManagedOptions::new("http://x", "not a token"),
    ];
    for options in bad {
        let mut o = GatewayOptions::managed(options);
        o.listen = "127.0.0.1:0".parse().unwrap();
        o.ops_listen = None;
        assert!(Gateway::start(o).await.is_err());
    }
    // A backup directory that cannot be created.
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut o = GatewayOptions::managed(managed(
        "http://127.0.0.1:1",
        Some((&file.path().join("sub"), KEY)),
    ));
    o.listen = "127.0.0.1:0".parse().unwrap();
    o.ops_listen = None;
    let err = Gateway::start(o).await.err().expect("refused");
    assert!(err.to_string().contains("backup directory"), "{err}");
}
