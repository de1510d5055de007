//! The OpenID key set refresher against a local server serving configuration
//! documents and key sets; and the core's refresh schedule it follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::callout::{FetchedKeySet, RefreshPolicy, RefreshSchedule};
use portcullis_runtime_tokio::{Callouts, JwksOptions, JwksRefresher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Requests seen per path, with the time of each.
type Log = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// An identity provider on loopback. For tenant `t`:
/// `/t/.well-known/openid-configuration` names `/t/keys`; `/t/keys` answers
/// `{"keys":[{"kid":"t-N"}]}` with N counting the fetches. Tenants named
/// `flakyK` answer 500 to their first K configuration requests; tenant `nokeys`
/// serves a key set without `keys`.
struct Idp {
    addr: SocketAddr,
    log: Log,
}

impl Idp {
    async fn start() -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Log = Arc::default();
        let server_log = log.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let log = server_log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 2048];
                    loop {
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end);
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        let count = {
                            let mut log = log.lock().unwrap();
                            let times = log.entry(path.clone()).or_default();
                            times.push(Instant::now());
                            times.len()
                        };
                        let (status, body) = answer(addr, &path, count);
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tcp.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Idp { addr, log }
    }

    fn config_url(&self, tenant: &str) -> String {
        format!(
            "http://{}/{tenant}/.well-known/openid-configuration",
            self.addr
        )
    }

    fn times(&self, path: &str) -> Vec<Instant> {
        self.log
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

fn answer(addr: SocketAddr, path: &str, count: usize) -> (u16, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let tenant = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    match rest {
        ".well-known/openid-configuration" => {
            let failures: usize = tenant
                .strip_prefix("flaky")
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            if count <= failures {
                return (500, "{}".to_owned());
            }
            (
                200,
                format!(
                    r#"{{"issuer":"http://{addr}/{tenant}","jwks_uri":"http://{addr}/{tenant}/keys"}}"#
                ),
            )
        }
        "keys" if tenant == "nokeys" => (200, r#"{"other":[]}"#.to_owned()),
        "keys" => (200, format!(r#"{{"keys":[{{"kid":"{tenant}-{count}"}}]}}"#)),
        _ => (404, "{}".to_owned()),
    }
}

/// What the refresher handed on: `(url, jwks, issuer)`.
type Got = (String, String, Option<String>);

/// A refresher reporting what it fetched on a channel.
fn refresher(options: JwksOptions) -> (JwksRefresher, mpsc::UnboundedReceiver<Got>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let refresher = JwksRefresher::spawn(
        Callouts::new(None).unwrap(),
        options,
        move |url: &str, fetched: FetchedKeySet| {
            let _ = tx.send((
                url.to_owned(),
                String::from_utf8_lossy(&fetched.jwks).into_owned(),
                fetched.issuer,
            ));
        },
    );
    (refresher, rx)
}

fn options(interval: Duration, min_backoff: Duration, max_backoff: Duration) -> JwksOptions {
    JwksOptions {
        policy: RefreshPolicy {
            interval,
            min_backoff,
            max_backoff,
        },
        request_timeout: Duration::from_secs(5),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Got>) -> Got {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a key set in time")
        .expect("refresher running")
}

#[tokio::test]
async fn fetches_at_once_then_every_interval() {
    let idp = Idp::start().await;
    let (refresher, mut rx) = refresher(options(
        Duration::from_millis(300),
        Duration::from_millis(50),
        Duration::from_secs(1),
    ));
    let url = idp.config_url("a");
    let started = Instant::now();
    refresher.set_urls([url.clone()]);
    let (got, jwks, issuer) = next(&mut rx).await;
    assert_eq!(got, url);
    assert_eq!(jwks, r#"{"keys":[{"kid":"a-1"}]}"#);
    // The configuration's issuer goes with its keys.
    assert_eq!(issuer, Some(format!("http://{}/a", idp.addr)));
    assert!(started.elapsed() < Duration::from_secs(2));
    let (got, jwks, _) = next(&mut rx).await;
    assert_eq!(got, url);
    assert_eq!(jwks, r#"{"keys":[{"kid":"a-2"}]}"#);
    let times = idp.times("/a/keys");
    assert!(times[1] - times[0] >= Duration::from_millis(300));
    // Setting the same list again changes nothing.
    refresher.set_urls([url.clone()]);
    let (_, jwks, _) = next(&mut rx).await;
    assert_eq!(jwks, r#"{"keys":[{"kid":"a-3"}]}"#);
}

#[tokio::test]
async fn new_urls_are_fetched_at_once() {
    let idp = Idp::start().await;
    let (refresher, mut rx) = refresher(JwksOptions::default());
    let a = idp.config_url("a");
    let b = idp.config_url("b");
    refresher.set_urls([a.clone()]);
    assert_eq!(next(&mut rx).await.0, a);
    let started = Instant::now();
    refresher.set_urls(vec![a.clone(), b.clone(), b.clone()]);
    let (got, jwks, _) = next(&mut rx).await;
    assert_eq!(got, b);
    assert_eq!(jwks, r#"{"keys":[{"kid":"b-1"}]}"#);
    assert!(started.elapsed() < Duration::from_secs(2));
    // `a` keeps its hourly schedule: it was not fetched again, `b` only once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(idp.times("/a/keys").len(), 1);
    assert_eq!(idp.times("/b/keys").len(), 1);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn failures_back_off_exponentially() {
    let idp = Idp::start().await;
    let (refresher, mut rx) = refresher(options(
        Duration::from_secs(3600),
        Duration::from_millis(100),
        Duration::from_secs(5),
    ));
    let url = idp.config_url("flaky3");
    refresher.set_urls([url.clone()]);
    let (got, jwks, _) = next(&mut rx).await;
    assert_eq!(got, url);
    assert_eq!(jwks, r#"{"keys":[{"kid":"flaky3-1"}]}"#);
    let times = idp.times("/flaky3/.well-known/openid-configuration");
    assert_eq!(times.len(), 4);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(400), "{gaps:?}");
    assert!(gaps[2] < Duration::from_secs(3), "{gaps:?}");
}

#[tokio::test]
async fn invalid_key_sets_and_unreachable_sources_are_not_handed_over() {
    let idp = Idp::start().await;
    let (refresher, mut rx) = refresher(options(
        Duration::from_secs(3600),
        Duration::from_millis(50),
        Duration::from_millis(100),
    ));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let unreachable = format!("http://{}/x", closed.local_addr().unwrap());
    drop(closed);
    let good = idp.config_url("good");
    refresher.set_urls([
        idp.config_url("nokeys"),
        idp.config_url("missing/deeper"),
        unreachable,
        good.clone(),
    ]);
    assert_eq!(next(&mut rx).await.0, good);
    // The bad ones keep being retried (capped at 100 ms) and never reported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(idp.times("/nokeys/keys").len() >= 3);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn dropping_the_refresher_stops_it() {
    let idp = Idp::start().await;
    let (refresher, mut rx) = refresher(options(
        Duration::from_millis(100),
        Duration::from_millis(50),
        Duration::from_millis(100),
    ));
    refresher.set_urls([idp.config_url("a")]);
    next(&mut rx).await;
    drop(refresher);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let count = idp.times("/a/keys").len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(idp.times("/a/keys").len(), count);
}

// ---- the schedule (core) ----

fn policy() -> RefreshPolicy {
    RefreshPolicy {
        interval: Duration::from_secs(3600),
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
    }
}

#[test]
fn schedule_new_sources_are_due_at_once() {
    let t0 = Instant::now();
    let mut s = RefreshSchedule::new(policy());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_due(t0), None);
    s.set_sources(["a", "b", "a"], t0);
    assert_eq!(s.sources().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(s.poll_timeout(), Some(t0));
    assert_eq!(s.poll_due(t0).as_deref(), Some("a"));
    assert_eq!(s.poll_due(t0).as_deref(), Some("b"));
    // Both in flight: nothing due, nothing to wait for.
    assert_eq!(s.poll_due(t0), None);
    assert_eq!(s.poll_timeout(), None);
    let t1 = t0 + Duration::from_secs(2);
    assert!(s.handle_success("a", t1));
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(3600)));
    assert_eq!(s.handle_failure("b", t1), Some(Duration::from_secs(1)));
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(1)));
    // A result for a source not in flight is ignored.
    assert!(!s.handle_success("a", t1));
    assert_eq!(s.handle_failure("zzz", t1), None);
}

#[test]
fn schedule_backs_off_and_resets_after_success() {
    let mut now = Instant::now();
    let mut s = RefreshSchedule::new(policy());
    s.set_sources(["a"], now);
    let mut waits = Vec::new();
    for _ in 0..11 {
        assert_eq!(s.poll_due(now).as_deref(), Some("a"));
        let wait = s.handle_failure("a", now).unwrap();
        waits.push(wait.as_secs());
        // Not due a moment before the wait is over.
        assert_eq!(s.poll_due(now + wait - Duration::from_millis(1)), None);
        now += wait;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(s.poll_due(now).as_deref(), Some("a"));
    assert!(s.handle_success("a", now));
    now += Duration::from_secs(3600);
    assert_eq!(s.poll_due(now).as_deref(), Some("a"));
    assert_eq!(s.handle_failure("a", now), Some(Duration::from_secs(1)));
}

#[test]
fn schedule_keeps_known_sources_and_forgets_removed_ones() {
    let t0 = Instant::now();
    let mut s = RefreshSchedule::new(policy());
    s.set_sources(["a", "b"], t0);
    let _ = s.poll_due(t0);
    let _ = s.poll_due(t0);
    assert!(s.handle_success("a", t0));
    // `b` is removed while in flight; `c` is new; `a` keeps its time.
    let t1 = t0 + Duration::from_secs(10);
    s.set_sources(vec!["c".to_owned(), "a".to_owned()], t1);
    assert!(!s.handle_success("b", t1));
    assert_eq!(s.poll_due(t1).as_deref(), Some("c"));
    assert_eq!(s.poll_due(t1), None);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3600)));
    // Re-added while a stale fetch reports: the new entry is due at once.
    s.set_sources(["a", "c", "b"], t1);
    assert_eq!(s.poll_due(t1).as_deref(), Some("b"));
    s.set_sources(Vec::<String>::new(), t1);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.sources().count(), 0);
}
