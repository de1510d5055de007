//! The sync agent against a fake clock: plain `Instant`s advanced by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::sync::agent::EARLY_ANSWERS_BEFORE_POLLING;
use portcullis_core::sync::backoff::Jitter;
use portcullis_core::sync::*;

const KEY: [u8; 32] = [7; 32];
const SEC: Duration = Duration::from_secs(1);
/// The gateway the harness's backups belong to.
const GW: &str = "gw-1";

fn binding(gateway: &str) -> backup::Binding {
    backup::Binding {
        gateway_id: gateway.into(),
        store_id: String::new(),
        signature: String::new(),
        signing_key: None,
    }
}

fn snapshot(revision: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"revision": {revision}, "apis": [{{"id": "a", "path": "a", "serviceUrl": "http://127.0.0.1:9/r{revision}"}}]}}"#
    ))
}

fn bad_snapshot(revision: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"revision": {revision}, "policy": "<policies><inbound><no-such-policy/></inbound></policies>"}}"#
    ))
}

fn settings(backup: bool, jitter: Jitter) -> SyncSettings {
    let mut s = SyncSettings::new("instance-1", "host-1");
    s.timing.backoff.jitter = jitter;
    if backup {
        s.backup = Some(BackupSettings {
            key: BackupKey::from_bytes(KEY),
            gateway_id: GW.into(),
            nonce_seed: [1; 12],
        });
    }
    s
}

/// An agent, its clock and the outputs it has produced.
struct Harness {
    agent: SyncAgent,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(settings: SyncSettings) -> Self {
        Harness::with_seed(settings, 1)
    }

    fn with_seed(settings: SyncSettings, seed: u64) -> Self {
        let t0 = Instant::now();
        Harness {
            agent: SyncAgent::new(settings, seed, t0),
            t0,
            now: t0,
        }
    }

    fn plain() -> Self {
        Harness::new(settings(false, Jitter::None))
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.agent.poll_output()).collect()
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.agent.handle_timeout(self.now);
    }

    /// Jumps to the agent's next deadline; returns how far that was.
    fn advance_to_deadline(&mut self) -> Duration {
        let at = self.agent.poll_timeout().expect("a deadline");
        assert!(at >= self.now, "deadline in the past");
        let d = at - self.now;
        self.now = at;
        self.agent.handle_timeout(self.now);
        d
    }

    fn fetch(&mut self, result: FetchResult) {
        self.agent.handle_fetch(result, self.now);
    }

    /// Runs the clock through deadlines (answering heartbeats with `heartbeat`) until
    /// the next fetch goes out; returns how long that took and the fetch.
    fn next_fetch(
        &mut self,
        heartbeat: Result<(), String>,
    ) -> (Duration, (Option<u64>, Option<Duration>)) {
        let start = self.now;
        loop {
            self.advance_to_deadline();
            let out = self.outputs();
            for _ in heartbeats(&out) {
                self.agent
                    .handle_heartbeat_done(heartbeat.clone(), self.now);
            }
            if let [fetch] = fetches(&out)[..] {
                return (self.now - start, fetch);
            }
        }
    }

    /// Answers the fetch in flight with a snapshot, applies it, and drains.
    fn serve(&mut self, revision: u64) -> Vec<Output> {
        self.fetch(FetchResult::Snapshot(snapshot(revision)));
        let out = self.outputs();
        assert_eq!(applied(&out), [revision], "{out:?}");
        out
    }
}

fn fetches(out: &[Output]) -> Vec<(Option<u64>, Option<Duration>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Fetch {
                if_none_match,
                wait,
                ..
            } => Some((if_none_match.as_ref().map(|id| id.revision), *wait)),
            _ => None,
        })
        .collect()
}

fn applied(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Apply(c) => Some(c.revision()),
            _ => None,
        })
        .collect()
}

fn heartbeats(out: &[Output]) -> Vec<Heartbeat> {
    out.iter()
        .filter_map(|o| match o {
            Output::Heartbeat(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn saves(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::SaveBackup(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// What the adapter read from the backup file.
type FileRead<'a> = Result<Option<&'a [u8]>, String>;

const LONG: Option<Duration> = Some(Duration::from_secs(30));

#[test]
fn start_asks_for_the_backup_and_the_first_fetch_at_once() {
    let mut h = Harness::new(settings(true, Jitter::None));
    let out = h.outputs();
    assert!(matches!(out[0], Output::LoadBackup), "{out:?}");
    assert!(matches!(
        out[1],
        Output::Fetch {
            if_none_match: None,
            wait: None,
            timeout
        } if timeout == 10 * SEC
    ));
    assert_eq!(out.len(), 2);
    assert_eq!(h.agent.connectivity(), Connectivity::Starting);
    assert_eq!(h.agent.status().health, Health::NotReady);

    let mut h = Harness::plain();
    let out = h.outputs();
    assert_eq!(fetches(&out), [(None, None)]);
    assert_eq!(out.len(), 1, "no backup configured: no LoadBackup");
}

#[test]
fn a_fetched_snapshot_is_applied_whole_then_long_polled() {
    let mut h = Harness::plain();
    h.outputs();
    h.advance(SEC / 2);
    let out = h.serve(1);
    let Some(Output::Apply(config)) = out.iter().find(|o| matches!(o, Output::Apply(_))) else {
        panic!()
    };
    assert_eq!(config.revision(), 1);
    assert_eq!(config.snapshot().apis[0].id, "a");
    assert!(events(&out).contains(&Event::Connected));
    assert!(events(&out).contains(&Event::Applied {
        revision: 1,
        previous: None,
        origin: Origin::Management
    }));
    // Long poll at once, with the revision as ETag and the wait on the timeout.
    assert_eq!(fetches(&out), [(Some(1), LONG)]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Fetch { timeout, .. } if *timeout == 40 * SEC
    )));
    assert!(saves(&out).is_empty(), "no backup configured");
    assert_eq!(h.agent.applied_revision(), Some(1));
    assert_eq!(h.agent.connectivity(), Connectivity::Connected);
    assert_eq!(h.agent.status().health, Health::Healthy);

    // A change answers the long poll: applied, and the next long poll goes out.
    h.advance(3 * SEC);
    let out = h.serve(2);
    assert_eq!(fetches(&out), [(Some(2), LONG)]);
    assert!(events(&out).contains(&Event::Applied {
        revision: 2,
        previous: Some(1),
        origin: Origin::Management
    }));
    // A long poll that ran its course: the next one at once.
    h.advance(30 * SEC);
    h.fetch(FetchResult::NotModified);
    let out = h.outputs();
    assert_eq!(fetches(&out), [(Some(2), LONG)]);
    assert!(applied(&out).is_empty());
}

#[test]
fn heartbeats_follow_the_first_fetch_then_every_minute() {
    let mut h = Harness::plain();
    h.outputs();
    assert_eq!(
        h.agent.poll_timeout(),
        None,
        "nothing due while the fetch runs"
    );
    h.advance(2 * SEC);
    let out = h.serve(4);
    let hb = heartbeats(&out);
    assert_eq!(hb.len(), 1, "first heartbeat right after the first fetch");
    assert_eq!(
        hb[0],
        Heartbeat {
            instance_id: "instance-1".into(),
            hostname: "host-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            applied_revision: Some(4),
            applied_digest: None,
            store_id: None,
            uptime_seconds: 2,
            health: Health::Healthy,
            connectivity: Connectivity::Connected,
            compile_errors: vec![],
            backup: BackupStatus::None,
            state_store: None,
        }
    );
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    // Long polls end every 30 s with 304; heartbeats every 60 s from the first.
    let mut sent = vec![h.elapsed()];
    while h.elapsed() < 200 * SEC {
        let next_fetch_end = h.now + 30 * SEC;
        if h.agent.poll_timeout().is_some_and(|t| t < next_fetch_end) {
            h.advance_to_deadline();
        } else {
            h.now = next_fetch_end;
            h.fetch(FetchResult::NotModified);
        }
        for hb in heartbeats(&h.outputs()) {
            assert_eq!(hb.applied_revision, Some(4));
            assert_eq!(hb.uptime_seconds, h.elapsed().as_secs());
            sent.push(h.elapsed());
            h.agent.handle_heartbeat_done(Ok(()), h.now);
        }
    }
    assert_eq!(sent, [2 * SEC, 62 * SEC, 122 * SEC, 182 * SEC]);
}

#[test]
fn the_first_heartbeat_also_follows_a_failed_first_fetch() {
    let mut h = Harness::plain();
    h.outputs();
    h.fetch(FetchResult::Transport("dns: no such host".into()));
    let out = h.outputs();
    let hb = heartbeats(&out);
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].connectivity, Connectivity::Disconnected);
    assert_eq!(hb[0].health, Health::NotReady);
    assert_eq!(hb[0].applied_revision, None);
    assert!(matches!(
        events(&out)[..],
        [Event::ConnectivityLost { at_start: true, .. }]
    ));
}

#[test]
fn a_long_poll_answered_early_falls_back_to_polling() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    // The server ignores `wait`: 304 after a second, every time. One early answer
    // could be a plane shutting down: long polls go on until a few in a row.
    for _ in 1..EARLY_ANSWERS_BEFORE_POLLING {
        h.advance(SEC);
        h.fetch(FetchResult::NotModified);
        let out = h.outputs();
        assert_eq!(fetches(&out), [(Some(1), LONG)]);
        assert!(events(&out).is_empty(), "{out:?}");
    }
    h.advance(SEC);
    h.fetch(FetchResult::NotModified);
    let out = h.outputs();
    assert!(fetches(&out).is_empty(), "no tight loop");
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::LongPollIgnored { asked, .. } if *asked == 30 * SEC
    )));
    // Plain polls every 10 s from now on.
    for _ in 0..5 {
        assert_eq!(h.next_fetch(Ok(())), (10 * SEC, (Some(1), None)));
        h.fetch(FetchResult::NotModified);
        h.outputs();
    }
    // A plain poll that brings a change: applied, then the next poll after 10 s.
    assert_eq!(h.next_fetch(Ok(())), (10 * SEC, (Some(1), None)));
    h.serve(2);
    assert_eq!(h.next_fetch(Ok(())), (10 * SEC, (Some(2), None)));
    h.fetch(FetchResult::NotModified);
    // Ten minutes after the fallback, long polls are tried again.
    loop {
        let (_, (etag, wait)) = h.next_fetch(Ok(()));
        assert_eq!(etag, Some(2));
        if wait == LONG {
            break;
        }
        assert!(h.elapsed() < 620 * SEC, "long polls never retried");
        h.fetch(FetchResult::NotModified);
    }
    assert!(h.elapsed() >= 600 * SEC);
    // This time the server holds it: long polls continue.
    h.advance(30 * SEC);
    h.fetch(FetchResult::NotModified);
    assert_eq!(fetches(&h.outputs()), [(Some(2), LONG)]);
}

#[test]
fn failures_back_off_exponentially_to_the_cap_and_reset_on_success() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    let mut waits = Vec::new();
    for i in 0..9 {
        h.fetch(FetchResult::Transport("connection refused".into()));
        let out = h.outputs();
        assert!(applied(&out).is_empty());
        match &events(&out)[..] {
            [Event::ConnectivityLost {
                at_start: false, ..
            }] => assert_eq!(i, 0),
            [Event::FetchFailed { failures, .. }] => assert_eq!(*failures, i + 1),
            other => panic!("{other:?}"),
        }
        let (waited, fetch) = h.next_fetch(Err("refused".into()));
        // The revision in force stays the ETag; a retry is a plain poll.
        assert_eq!(fetch, (Some(1), None));
        waits.push(waited.as_secs());
    }
    assert_eq!(waits, [1, 2, 4, 5, 5, 5, 5, 5, 5]);
    assert_eq!(h.agent.applied_revision(), Some(1), "still serving");
    assert_eq!(h.agent.connectivity(), Connectivity::Disconnected);
    assert_eq!(h.agent.status().health, Health::Degraded);
    assert_eq!(
        h.agent.status().last_error.as_deref(),
        Some("connection refused")
    );
    // Back: the backoff starts over.
    h.fetch(FetchResult::NotModified);
    h.outputs();
    assert_eq!(h.agent.status().last_error, None);
    h.fetch(FetchResult::Status {
        status: 502,
        detail: "bad gateway".into(),
    });
    let out = h.outputs();
    assert!(matches!(
        &events(&out)[..],
        [Event::ConnectivityLost { retry_in, error, .. }] if *retry_in == SEC && error == "status 502: bad gateway"
    ));
}

#[test]
fn a_gateway_with_nothing_to_serve_retries_at_least_every_poll_interval() {
    // A backoff longer than the poll interval (the default one is shorter).
    let mut s = settings(false, Jitter::None);
    s.timing.backoff.max = 60 * SEC;
    let mut h = Harness::new(s);
    h.outputs();
    let mut waits = Vec::new();
    for _ in 0..8 {
        h.fetch(FetchResult::Transport("connection refused".into()));
        h.outputs();
        let (waited, fetch) = h.next_fetch(Err("refused".into()));
        assert_eq!(fetch, (None, None));
        waits.push(waited.as_secs());
    }
    assert_eq!(waits, [1, 2, 4, 8, 10, 10, 10, 10]);
    // Once something is served, the full backoff applies.
    h.fetch(FetchResult::Snapshot(snapshot(1)));
    h.outputs();
    for _ in 0..7 {
        h.fetch(FetchResult::Transport("connection refused".into()));
        h.outputs();
        h.next_fetch(Err("refused".into()));
    }
    h.fetch(FetchResult::Transport("connection refused".into()));
    let out = h.outputs();
    assert!(matches!(
        &events(&out)[..],
        [Event::FetchFailed { retry_in, .. }] if *retry_in == 60 * SEC
    ));
}

#[test]
fn jittered_waits_are_deterministic_per_seed() {
    let run = |seed: u64| {
        let mut h = Harness::with_seed(settings(false, Jitter::Equal), seed);
        h.outputs();
        h.serve(1);
        let mut waits = Vec::new();
        for _ in 0..10 {
            h.fetch(FetchResult::Transport("down".into()));
            h.outputs();
            waits.push(h.next_fetch(Err("down".into())).0);
        }
        waits
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    let policy = portcullis_core::sync::backoff::BackoffPolicy::default();
    for (i, w) in a.iter().enumerate() {
        let ceiling = policy.ceiling(i as u32 + 1);
        assert!(*w <= ceiling && *w >= ceiling / 2, "{i}: {w:?}");
    }
}

#[test]
fn connectivity_back_sends_a_heartbeat_soon_and_resumes_long_polls() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    h.advance(10 * SEC);
    h.fetch(FetchResult::Transport("timeout".into()));
    h.outputs();
    h.advance_to_deadline();
    assert_eq!(fetches(&h.outputs()), [(Some(1), None)]);
    h.fetch(FetchResult::NotModified);
    let out = h.outputs();
    assert!(events(&out).contains(&Event::ConnectivityRestored { failures: 1 }));
    let hb = heartbeats(&out);
    assert_eq!(hb.len(), 1, "heartbeat right after reconnecting: {out:?}");
    assert_eq!(hb[0].connectivity, Connectivity::Connected);
    assert_eq!(fetches(&out), [(Some(1), LONG)]);
}

#[test]
fn a_snapshot_that_does_not_compile_is_kept_out_and_reported() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    h.advance(5 * SEC);
    h.fetch(FetchResult::Snapshot(bad_snapshot(2)));
    let out = h.outputs();
    assert!(applied(&out).is_empty(), "not applied");
    assert!(matches!(
        &events(&out)[..],
        [Event::Rejected { revision: Some(2), error }] if error.contains("no-such-policy")
    ));
    assert_eq!(h.agent.applied_revision(), Some(1));
    // Reported at once in a heartbeat.
    let hb = heartbeats(&out);
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].applied_revision, Some(1));
    assert_eq!(hb[0].health, Health::Degraded);
    assert_eq!(hb[0].compile_errors.len(), 1);
    assert!(
        hb[0].compile_errors[0].starts_with("revision 2: "),
        "{hb:?}"
    );
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    // Not refetched in a tight loop: a plain poll after the interval, ETag unchanged.
    assert!(fetches(&out).is_empty());
    assert_eq!(h.advance_to_deadline(), 10 * SEC);
    assert_eq!(fetches(&h.outputs()), [(Some(1), None)]);
    // The same bad revision again: not compiled again, no new event.
    h.fetch(FetchResult::Snapshot(bad_snapshot(2)));
    let out = h.outputs();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.advance_to_deadline(), 10 * SEC);
    assert_eq!(fetches(&h.outputs()), [(Some(1), None)]);
    // The fix arrives: applied, errors cleared, long polls again.
    let out = h.serve(3);
    assert_eq!(fetches(&out), [(Some(3), LONG)]);
    assert!(h.agent.status().compile_errors.is_empty());
    assert_eq!(h.agent.status().health, Health::Healthy);
}

#[test]
fn a_body_that_is_not_a_snapshot_is_kept_out() {
    let mut h = Harness::plain();
    h.outputs();
    h.fetch(FetchResult::Snapshot(Bytes::from_static(
        b"<html>proxy error</html>",
    )));
    let out = h.outputs();
    assert!(applied(&out).is_empty());
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::Rejected { revision: None, .. })));
    assert_eq!(h.agent.status().health, Health::NotReady);
    assert_eq!(h.advance_to_deadline(), 10 * SEC);
    assert_eq!(fetches(&h.outputs()), [(None, None)]);
}

#[test]
fn a_refused_token_keeps_serving_and_retrying() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    for expected in [1, 2, 4] {
        h.fetch(FetchResult::Unauthorized("token expired".into()));
        let out = h.outputs();
        assert!(matches!(
            &events(&out)[..],
            [Event::Unauthorized { detail, retry_in }]
                if detail == "token expired" && *retry_in == expected * SEC
        ));
        assert_eq!(
            events(&out)[0].severity(),
            portcullis_core::sync::Severity::Error
        );
        assert_eq!(h.next_fetch(Err("401".into())).0, expected * SEC);
    }
    assert_eq!(h.agent.applied_revision(), Some(1));
    assert_eq!(
        h.agent.status().last_error.as_deref(),
        Some("unauthorized: token expired")
    );
}

#[test]
fn each_apply_is_saved_and_the_backup_round_trips() {
    let mut a = Harness::new(settings(true, Jitter::None));
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    assert_eq!(events(&a.outputs()), [Event::BackupMissing]);
    let out = a.serve(5);
    let files = saves(&out);
    assert_eq!(files.len(), 1, "saved after the apply");
    a.agent.handle_backup_saved(Ok(()), a.now);
    assert!(events(&a.outputs()).contains(&Event::BackupSaved { revision: 5 }));
    assert_eq!(a.agent.status().backup, BackupStatus::Saved);
    assert_eq!(a.agent.heartbeat(a.now).backup, BackupStatus::Saved);

    // A new process during an outage: the backup serves.
    let mut b = Harness::new(settings(true, Jitter::None));
    b.outputs();
    b.agent.handle_backup_loaded(Ok(Some(&files[0])), b.now);
    let out = b.outputs();
    assert_eq!(applied(&out), [5]);
    assert!(events(&out).contains(&Event::Applied {
        revision: 5,
        previous: None,
        origin: Origin::Backup
    }));
    assert!(saves(&out).is_empty(), "the backup is not saved again");
    assert_eq!(b.agent.status().backup, BackupStatus::Loaded);
    b.fetch(FetchResult::Transport("no route to host".into()));
    let out = b.outputs();
    assert!(applied(&out).is_empty());
    assert_eq!(b.agent.applied_revision(), Some(5));
    assert_eq!(heartbeats(&out)[0].health, Health::Degraded);
    // Back: the fetch asks whether revision 5 is current; a newer one replaces it.
    b.advance_to_deadline();
    assert_eq!(fetches(&b.outputs()), [(Some(5), None)]);
    let out = b.serve(7);
    assert_eq!(saves(&out).len(), 1);
}

#[test]
fn a_fetch_of_the_backups_revision_is_not_applied_twice() {
    let mut a = Harness::new(settings(true, Jitter::None));
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    a.outputs();
    let out = a.serve(5);
    let file = saves(&out).remove(0);
    let mut b = Harness::new(settings(true, Jitter::None));
    b.outputs();
    b.agent.handle_backup_loaded(Ok(Some(&file)), b.now);
    b.outputs();
    b.fetch(FetchResult::Snapshot(snapshot(5)));
    let out = b.outputs();
    assert!(
        applied(&out).is_empty() && saves(&out).is_empty(),
        "{out:?}"
    );
    assert_eq!(fetches(&out), [(Some(5), LONG)]);
}

#[test]
fn a_backup_older_than_a_fetched_configuration_is_ignored() {
    // With a configured key: without one, a fetch waits for the backup (whose
    // pin it must match) and cannot win the race.
    let plane = Plane::new();
    let with_key = || {
        let mut s = settings(true, Jitter::None);
        s.management_keys = vec![plane.key()];
        s
    };
    let mut a = Harness::new(with_key());
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    a.outputs();
    a.fetch(plane.send(5));
    let file = saves(&a.outputs()).remove(0);
    let mut b = Harness::new(with_key());
    b.outputs();
    // The fetch wins the race against the file read.
    b.fetch(plane.send(6));
    assert_eq!(applied(&b.outputs()), [6]);
    b.agent.handle_backup_loaded(Ok(Some(&file)), b.now);
    let out = b.outputs();
    assert!(applied(&out).is_empty());
    assert_eq!(events(&out), [Event::BackupStale { revision: 5 }]);
    // The save of revision 6 waited for the read, and goes out now.
    let saved = saves(&out);
    assert_eq!(saved.len(), 1, "{out:?}");
    let key = BackupKey::from_bytes(KEY);
    assert_eq!(backup::open(&saved[0], &key, GW).unwrap().revision, 6);
    assert_eq!(b.agent.applied_revision(), Some(6));
}

#[test]
fn a_damaged_or_foreign_backup_is_reported_and_never_applied() {
    let mut a = Harness::new(settings(true, Jitter::None));
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    a.outputs();
    let file = saves(&a.serve(5)).remove(0);
    let mut flipped = file.clone();
    flipped[60] ^= 0x20;
    let foreign = backup::seal(
        5,
        &snapshot(5),
        &binding(GW),
        &BackupKey::from_bytes([8; 32]),
        [0; 12],
    )
    .unwrap();
    let cases: [(FileRead, &str); 5] = [
        (Ok(Some(&flipped)), "checksum"),
        (Ok(Some(&file[..file.len() - 1])), "truncated"),
        (Ok(Some(b"")), "truncated"),
        (Ok(Some(&foreign)), "wrong backup key"),
        (Err("permission denied".into()), "permission denied"),
    ];
    for (input, reason) in cases {
        let mut b = Harness::new(settings(true, Jitter::None));
        b.outputs();
        b.agent.handle_backup_loaded(input, b.now);
        let out = b.outputs();
        assert!(applied(&out).is_empty(), "{reason}");
        assert!(
            matches!(&events(&out)[..], [Event::BackupRejected { error }] if error.contains(reason)),
            "{reason}: {out:?}"
        );
        let BackupStatus::Error(text) = b.agent.status().backup else {
            panic!("{reason}")
        };
        assert!(text.contains(reason), "{text}");
        assert_eq!(b.agent.applied_revision(), None);
        // The heartbeat says so, and the gateway is not ready.
        b.fetch(FetchResult::Transport("down".into()));
        let hb = heartbeats(&b.outputs()).remove(0);
        assert!(
            hb.backup.to_string().starts_with("error: "),
            "{:?}",
            hb.backup
        );
        assert_eq!(hb.health, Health::NotReady);
    }
    // A backup of a snapshot that does not compile is not served either.
    let bad = backup::seal(
        9,
        &bad_snapshot(9),
        &binding(GW),
        &BackupKey::from_bytes(KEY),
        [0; 12],
    )
    .unwrap();
    let mut b = Harness::new(settings(true, Jitter::None));
    b.outputs();
    b.agent.handle_backup_loaded(Ok(Some(&bad)), b.now);
    let out = b.outputs();
    assert!(applied(&out).is_empty());
    assert!(
        matches!(&events(&out)[..], [Event::BackupRejected { error }] if error.contains("no-such-policy"))
    );
}

#[test]
fn saves_do_not_overlap_and_the_newest_wins() {
    let mut h = Harness::new(settings(true, Jitter::None));
    h.outputs();
    h.agent.handle_backup_loaded(Ok(None), h.now);
    h.outputs();
    let first = saves(&h.serve(1));
    assert_eq!(first.len(), 1);
    // Two more applies while the first save is under way: only the newest is kept.
    assert!(saves(&h.serve(2)).is_empty());
    assert!(saves(&h.serve(3)).is_empty());
    h.agent.handle_backup_saved(Ok(()), h.now);
    let out = h.outputs();
    let next = saves(&out);
    assert_eq!(next.len(), 1);
    let key = BackupKey::from_bytes(KEY);
    assert_eq!(backup::open(&next[0], &key, GW).unwrap().revision, 3);
    assert_eq!(backup::open(&first[0], &key, GW).unwrap().revision, 1);
    // A failed save is reported (and heartbeats say so).
    h.agent.handle_backup_saved(Err("disk full".into()), h.now);
    let out = h.outputs();
    assert!(events(&out).contains(&Event::BackupSaveFailed {
        revision: 3,
        error: "disk full".into()
    }));
    assert_eq!(
        h.agent.status().backup,
        BackupStatus::Error("save failed: disk full".into())
    );
    assert_eq!(h.agent.status().health, Health::Degraded);
    // The next apply saves again.
    assert_eq!(saves(&h.serve(4)).len(), 1);
    h.agent.handle_backup_saved(Ok(()), h.now);
    assert_eq!(h.agent.status().backup, BackupStatus::Saved);
}

#[test]
fn answers_nobody_asked_for_are_ignored() {
    let mut h = Harness::plain();
    h.outputs();
    h.fetch(FetchResult::Transport("down".into()));
    h.outputs();
    // No fetch is in flight during the backoff: a stray answer changes nothing.
    h.fetch(FetchResult::Snapshot(snapshot(1)));
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    h.agent.handle_heartbeat_done(Ok(()), h.now);
    // No backup configured, so no backup answers count either.
    h.agent.handle_backup_saved(Ok(()), h.now);
    h.agent.handle_backup_loaded(Ok(Some(b"junk")), h.now);
    let out = h.outputs();
    assert!(
        applied(&out).is_empty() && fetches(&out).is_empty(),
        "{out:?}"
    );
    assert_eq!(h.agent.applied_revision(), None);
    assert_eq!(h.agent.status().backup, BackupStatus::None);
    assert_eq!(h.next_fetch(Ok(())).1, (None, None));
}

#[test]
fn heartbeat_failures_are_quiet_only_during_an_outage() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    h.agent
        .handle_heartbeat_done(Err("status 500".into()), h.now);
    let e = events(&h.outputs()).remove(0);
    assert_eq!(e.severity(), portcullis_core::sync::Severity::Warn, "{e}");
    let mut h2 = Harness::plain();
    h2.outputs();
    h2.fetch(FetchResult::Transport("down".into()));
    h2.outputs();
    h2.agent.handle_heartbeat_done(Err("down".into()), h2.now);
    let e = events(&h2.outputs()).remove(0);
    assert!(matches!(
        e,
        Event::HeartbeatFailed {
            disconnected: true,
            ..
        }
    ));
    assert_eq!(e.severity(), portcullis_core::sync::Severity::Debug);
}

#[test]
fn a_long_poll_ended_by_a_restart_is_followed_by_long_polls() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    // A plane shutting down gracefully ends the long poll early with 503 (an
    // older one with 304); the restart refuses connections for a while.
    h.advance(SEC);
    h.fetch(FetchResult::NotModified);
    assert_eq!(fetches(&h.outputs()), [(Some(1), LONG)]);
    h.advance(SEC);
    h.fetch(FetchResult::Status {
        status: 503,
        detail: "shutting down".into(),
    });
    h.outputs();
    for _ in 0..4 {
        let (waited, fetch) = h.next_fetch(Ok(()));
        assert!(waited <= 5 * SEC, "{waited:?}");
        assert_eq!(fetch, (Some(1), None));
        h.fetch(FetchResult::Transport("connection refused".into()));
        h.outputs();
    }
    // Back: the plain poll that reconnects is followed by a long poll at once.
    h.next_fetch(Ok(()));
    h.fetch(FetchResult::NotModified);
    let out = h.outputs();
    assert!(!events(&out)
        .iter()
        .any(|e| matches!(e, Event::LongPollIgnored { .. })));
    assert_eq!(fetches(&out), [(Some(1), LONG)]);
    // Early answers around the restart do not add up with later ones.
    for _ in 1..EARLY_ANSWERS_BEFORE_POLLING {
        h.advance(SEC);
        h.fetch(FetchResult::NotModified);
        assert_eq!(fetches(&h.outputs()), [(Some(1), LONG)]);
    }
    h.advance(30 * SEC);
    h.fetch(FetchResult::NotModified);
    assert_eq!(fetches(&h.outputs()), [(Some(1), LONG)]);
}

#[test]
fn a_reconnect_ends_the_fallback_to_polling() {
    let mut h = Harness::plain();
    h.outputs();
    h.serve(1);
    for _ in 0..EARLY_ANSWERS_BEFORE_POLLING {
        h.advance(SEC);
        h.fetch(FetchResult::NotModified);
    }
    let out = h.outputs();
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::LongPollIgnored { .. })));
    assert_eq!(h.next_fetch(Ok(())), (10 * SEC, (Some(1), None)));
    // An outage (the plane replaced, perhaps by one that holds long polls)...
    h.fetch(FetchResult::Transport("connection refused".into()));
    h.outputs();
    h.next_fetch(Ok(()));
    // ...and once it answers, long polls are tried again at once.
    h.fetch(FetchResult::NotModified);
    assert_eq!(fetches(&h.outputs()), [(Some(1), LONG)]);
}

/// A snapshot stamped like the management plane does, from store `store`, with
/// `variant` in its backend URL.
fn stamped(revision: u64, store: &str, variant: &str) -> (Bytes, portcullis_core::sync::ContentId) {
    let mut s = portcullis_core::config::Snapshot::from_json(&snapshot(revision)).unwrap();
    s.apis[0].service_url = Some(format!("http://127.0.0.1:9/{variant}"));
    portcullis_core::sync::content::stamp(&mut s, store);
    let id = portcullis_core::sync::ContentId::of(&s);
    (Bytes::from(s.to_json()), id)
}

#[test]
fn other_content_at_an_equal_or_lower_revision_is_applied() {
    let mut h = Harness::plain();
    h.outputs();
    let (first, first_id) = stamped(5, "store-a", "one");
    h.fetch(FetchResult::Snapshot(first));
    let out = h.outputs();
    assert_eq!(applied(&out), [5]);
    // The long poll names the content, not just the revision.
    let etags: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Fetch { if_none_match, .. } => if_none_match.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(etags, std::slice::from_ref(&first_id));
    assert_eq!(h.agent.applied_content(), Some(&first_id));
    let status = h.agent.status();
    assert_eq!(status.applied_digest, first_id.digest);
    assert_eq!(status.applied_store_id.as_deref(), Some("store-a"));
    let hb = h.agent.heartbeat(h.now);
    assert_eq!(hb.applied_digest, first_id.digest);
    assert_eq!(hb.store_id.as_deref(), Some("store-a"));

    // The same content again is not applied again.
    h.advance(30 * SEC);
    h.fetch(FetchResult::Snapshot(stamped(5, "store-a", "one").0));
    assert!(applied(&h.outputs()).is_empty());

    // A restored store: the same revision, other content.
    let (same_rev, same_rev_id) = stamped(5, "store-a", "two");
    h.advance(30 * SEC);
    h.fetch(FetchResult::Snapshot(same_rev));
    let out = h.outputs();
    assert_eq!(applied(&out), [5], "{out:?}");
    assert_eq!(h.agent.applied_content(), Some(&same_rev_id));

    // A restored store behind the gateway: a lower revision.
    let (lower, lower_id) = stamped(3, "store-b", "three");
    h.advance(30 * SEC);
    h.fetch(FetchResult::Snapshot(lower));
    let out = h.outputs();
    assert_eq!(applied(&out), [3], "{out:?}");
    assert_eq!(h.agent.applied_content(), Some(&lower_id));
    let Some(Output::Apply(config)) = out.iter().find(|o| matches!(o, Output::Apply(_))) else {
        panic!("{out:?}")
    };
    assert_eq!(
        config.snapshot().apis[0].service_url.as_deref(),
        Some("http://127.0.0.1:9/three")
    );
}

#[test]
fn another_gateways_backup_is_neither_served_nor_overwritten() {
    // Gateway gw-2's file, under the same key, in gw-1's backup directory.
    let theirs = backup::seal(
        5,
        &snapshot(5),
        &binding("gw-2"),
        &BackupKey::from_bytes(KEY),
        [0; 12],
    )
    .unwrap();
    let mut h = Harness::new(settings(true, Jitter::None));
    h.outputs();
    h.agent.handle_backup_loaded(Ok(Some(&theirs)), h.now);
    let out = h.outputs();
    assert!(applied(&out).is_empty(), "{out:?}");
    let [Event::BackupRejected { error }] = &events(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(
        error.contains("`gw-2`") && error.contains("`gw-1`"),
        "{error}"
    );
    assert_eq!(h.agent.status().health, Health::NotReady);
    // Once the management plane answers, the gateway serves, but never writes
    // over the other gateway's file; the heartbeat keeps saying why.
    let out = h.serve(6);
    assert!(saves(&out).is_empty(), "{out:?}");
    h.advance(30 * SEC);
    let out = h.serve(7);
    assert!(saves(&out).is_empty(), "{out:?}");
    let BackupStatus::Error(text) = h.agent.status().backup else {
        panic!("{:?}", h.agent.status())
    };
    assert!(text.contains("gw-2"), "{text}");
    assert_eq!(h.agent.status().health, Health::Degraded);
}

#[test]
fn a_save_waits_for_the_backup_read() {
    // A configured key: a fetch is applied before the backup is read.
    let plane = Plane::new();
    let mut s = settings(true, Jitter::None);
    s.management_keys = vec![plane.key()];
    let mut h = Harness::new(s);
    h.outputs();
    // The fetch answers before the file is read: nothing is written yet.
    h.fetch(plane.send(3));
    let out = h.outputs();
    assert_eq!(applied(&out), [3], "{out:?}");
    assert!(saves(&out).is_empty(), "{out:?}");
    h.agent.handle_backup_loaded(Ok(None), h.now);
    let out = h.outputs();
    let saved = saves(&out);
    assert_eq!(saved.len(), 1, "{out:?}");
    let opened = backup::open(&saved[0], &BackupKey::from_bytes(KEY), GW).unwrap();
    assert_eq!(opened.revision, 3);
    assert_eq!(opened.binding.gateway_id, GW);
}

#[test]
fn with_a_management_key_only_snapshots_signed_with_it_are_applied() {
    use portcullis_core::sync::signature::{header_value, PublicKey};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pair = |rng| {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    };
    let (ours, theirs) = (pair(&rng), pair(&rng));
    let mut s = settings(false, Jitter::None);
    s.management_keys = vec![PublicKey::from_bytes(
        ours.public_key().as_ref().try_into().unwrap(),
    )];
    let mut h = Harness::new(s);
    h.outputs();
    let signed = |pair: &Ed25519KeyPair, rev| {
        let body = snapshot(rev);
        let signature = header_value(pair.sign(&body).as_ref());
        FetchResult::SignedSnapshot {
            body,
            signature,
            signing_key: None,
        }
    };
    h.fetch(signed(&ours, 1));
    assert_eq!(applied(&h.outputs()), [1]);

    // Unsigned, or signed with another key: refused, the configuration stays.
    for (result, reason) in [
        (FetchResult::Snapshot(snapshot(2)), "not signed"),
        (signed(&theirs, 3), "does not verify"),
    ] {
        h.advance(30 * SEC);
        h.fetch(result);
        let out = h.outputs();
        assert!(applied(&out).is_empty(), "{reason}: {out:?}");
        assert_eq!(h.agent.applied_revision(), Some(1));
        let errors = h.agent.status().compile_errors;
        assert!(errors.iter().any(|e| e.contains(reason)), "{errors:?}");
        assert_eq!(h.agent.status().health, Health::Degraded);
    }
    h.advance(30 * SEC);
    h.fetch(signed(&ours, 4));
    assert_eq!(applied(&h.outputs()), [4]);
    assert!(h.agent.status().compile_errors.is_empty());
}

#[test]
fn a_backup_keeps_the_signature_and_is_checked_at_load() {
    use portcullis_core::sync::signature::{header_value, PublicKey};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = PublicKey::from_bytes(pair.public_key().as_ref().try_into().unwrap());
    let with_key = || {
        let mut s = settings(true, Jitter::None);
        s.management_keys = vec![public.clone()];
        s
    };
    // A gateway with the key saves a signed snapshot...
    let mut a = Harness::new(with_key());
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    a.outputs();
    let body = snapshot(5);
    let signature = header_value(pair.sign(&body).as_ref());
    a.fetch(FetchResult::SignedSnapshot {
        body,
        signature,
        signing_key: None,
    });
    let signed_file = saves(&a.outputs()).remove(0);
    // ...which a restart with the key serves.
    let mut b = Harness::new(with_key());
    b.outputs();
    b.agent.handle_backup_loaded(Ok(Some(&signed_file)), b.now);
    assert_eq!(applied(&b.outputs()), [5]);

    // A backup of an unsigned snapshot is refused by a gateway with the key.
    let mut c = Harness::new(settings(true, Jitter::None));
    c.outputs();
    c.agent.handle_backup_loaded(Ok(None), c.now);
    c.outputs();
    let unsigned_file = saves(&c.serve(6)).remove(0);
    let mut d = Harness::new(with_key());
    d.outputs();
    d.agent
        .handle_backup_loaded(Ok(Some(&unsigned_file)), d.now);
    let out = d.outputs();
    assert!(applied(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&events(&out)[..], [Event::BackupRejected { error }] if error.contains("not signed")),
        "{out:?}"
    );
}

/// A management plane's signing key, for the trust-on-first-use tests.
struct Plane(ring::signature::Ed25519KeyPair);

impl Plane {
    fn new() -> Plane {
        use ring::signature::Ed25519KeyPair;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Plane(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn key(&self) -> signature::PublicKey {
        use ring::signature::KeyPair;
        signature::PublicKey::from_bytes(self.0.public_key().as_ref().try_into().unwrap())
    }

    /// A snapshot as this plane sends it: signed, its key beside the signature.
    fn send(&self, revision: u64) -> FetchResult {
        let body = snapshot(revision);
        FetchResult::SignedSnapshot {
            signature: signature::header_value(self.0.sign(&body).as_ref()),
            body,
            signing_key: Some(self.key().to_base64()),
        }
    }
}

#[test]
fn without_a_key_the_first_signed_snapshot_pins_the_planes_key() {
    let (first, second) = (Plane::new(), Plane::new());
    let mut h = Harness::plain();
    h.outputs();
    h.fetch(first.send(1));
    let out = h.outputs();
    assert_eq!(applied(&out), [1]);
    let pinned: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| matches!(e, Event::SigningKeyPinned { .. }))
        .collect();
    assert_eq!(
        pinned,
        [Event::SigningKeyPinned {
            fingerprint: first.key().fingerprint(),
            from_backup: false
        }]
    );
    let line = pinned[0].to_string();
    assert!(
        line.contains(&format!(
            "trusting the management signing key {} on first use",
            first.key().fingerprint()
        )),
        "{line}"
    );
    assert_eq!(pinned[0].severity(), Severity::Warn);

    // Another plane at the same URL, and an unsigned snapshot: refused, the
    // configuration in force stays, the heartbeat says why.
    for (result, reason) in [
        (second.send(2), "does not verify"),
        (FetchResult::Snapshot(snapshot(3)), "not signed"),
    ] {
        h.advance(30 * SEC);
        h.fetch(result);
        let out = h.outputs();
        assert!(applied(&out).is_empty(), "{reason}: {out:?}");
        assert_eq!(h.agent.applied_revision(), Some(1));
        let errors = h.agent.status().compile_errors;
        assert!(errors.iter().any(|e| e.contains(reason)), "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&first.key().fingerprint()) || e.contains("not signed")),
            "{errors:?}"
        );
        assert_eq!(h.agent.status().health, Health::Degraded);
    }
    // The pinned plane is back: applied.
    h.advance(30 * SEC);
    h.fetch(first.send(4));
    assert_eq!(applied(&h.outputs()), [4]);
    assert!(h.agent.status().compile_errors.is_empty());
}

#[test]
fn an_unsigned_first_snapshot_is_served_unverified_and_pins_nothing() {
    let (plane, other) = (Plane::new(), Plane::new());
    let mut h = Harness::plain();
    h.outputs();
    h.fetch(FetchResult::Snapshot(snapshot(1)));
    let out = h.outputs();
    assert_eq!(applied(&out), [1]);
    let unverified = events(&out)
        .into_iter()
        .find(|e| matches!(e, Event::Unverified { revision: 1 }))
        .expect("an unverified warning");
    assert_eq!(unverified.severity(), Severity::Warn);
    // Nothing was pinned: the first signed snapshot, of any plane, pins.
    h.advance(30 * SEC);
    h.fetch(plane.send(2));
    assert_eq!(applied(&h.outputs()), [2]);
    h.advance(30 * SEC);
    h.fetch(other.send(3));
    assert!(applied(&h.outputs()).is_empty());
}

#[test]
fn the_pin_survives_a_restart_through_the_backup() {
    let (first, second) = (Plane::new(), Plane::new());
    let mut a = Harness::new(settings(true, Jitter::None));
    a.outputs();
    a.agent.handle_backup_loaded(Ok(None), a.now);
    a.outputs();
    a.fetch(first.send(5));
    let file = saves(&a.outputs()).remove(0);
    let opened = backup::open(&file, &BackupKey::from_bytes(KEY), GW).unwrap();
    assert_eq!(opened.binding.signing_key, Some(first.key()));
    assert!(opened.binding.signature.starts_with("ed25519="));

    // Restarted from the backup, without a key: the backup's pin holds, and
    // another plane's snapshot fetched before the backup was read waits for
    // it, then is refused.
    let mut b = Harness::new(settings(true, Jitter::None));
    b.outputs();
    b.fetch(second.send(6));
    assert!(applied(&b.outputs()).is_empty());
    b.agent.handle_backup_loaded(Ok(Some(&file)), b.now);
    let out = b.outputs();
    assert_eq!(applied(&out), [5], "{out:?}");
    assert!(
        events(&out).contains(&Event::SigningKeyPinned {
            fingerprint: first.key().fingerprint(),
            from_backup: true
        }),
        "{out:?}"
    );
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::Rejected { error, .. } if error.contains(&first.key().fingerprint()))),
        "{out:?}"
    );
    assert_eq!(b.agent.applied_revision(), Some(5));
    // The first plane again: applied.
    b.advance(30 * SEC);
    b.fetch(first.send(7));
    assert_eq!(applied(&b.outputs()), [7]);

    // With --management-public-key of another plane, the backup is refused
    // naming both keys.
    let mut s = settings(true, Jitter::None);
    s.management_keys = vec![second.key()];
    let mut c = Harness::new(s);
    c.outputs();
    c.agent.handle_backup_loaded(Ok(Some(&file)), c.now);
    let out = c.outputs();
    assert!(applied(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&events(&out)[..], [Event::BackupRejected { error }]
            if error.contains(&first.key().fingerprint())
                && error.contains(&second.key().fingerprint())
                && error.contains("remove the backup")),
        "{out:?}"
    );
    // The same key as the pin: served.
    let mut s = settings(true, Jitter::None);
    s.management_keys = vec![first.key()];
    let mut d = Harness::new(s);
    d.outputs();
    d.agent.handle_backup_loaded(Ok(Some(&file)), d.now);
    assert_eq!(applied(&d.outputs()), [5]);
}

#[test]
fn a_snapshot_fetched_while_the_backup_loads_waits_and_is_then_taken() {
    let plane = Plane::new();
    let mut h = Harness::new(settings(true, Jitter::None));
    h.outputs();
    h.fetch(plane.send(1));
    let out = h.outputs();
    assert!(applied(&out).is_empty(), "{out:?}");
    assert!(fetches(&out).is_empty(), "{out:?}");
    h.agent.handle_backup_loaded(Ok(None), h.now);
    let out = h.outputs();
    assert_eq!(applied(&out), [1], "{out:?}");
    assert_eq!(saves(&out).len(), 1, "{out:?}");
}

#[test]
fn a_pinned_gateway_follows_a_rotation_the_old_key_endorses() {
    let (old, new, stranger) = (Plane::new(), Plane::new(), Plane::new());
    // The overlap: both signatures, the new (current) key listed first.
    let overlap = |revision| {
        let body = snapshot(revision);
        FetchResult::SignedSnapshot {
            signature: signature::join_values(&[
                signature::header_value(new.0.sign(&body).as_ref()),
                signature::header_value(old.0.sign(&body).as_ref()),
            ]),
            signing_key: Some(signature::join_values(&[
                new.key().to_base64(),
                old.key().to_base64(),
            ])),
            body,
        }
    };
    let mut h = Harness::new(settings(true, Jitter::None));
    h.outputs();
    h.agent.handle_backup_loaded(Ok(None), h.now);
    h.outputs();
    h.fetch(old.send(1));
    h.outputs();
    h.agent.handle_backup_saved(Ok(()), h.now);
    h.advance(30 * SEC);
    h.fetch(overlap(2));
    let out = h.outputs();
    assert_eq!(applied(&out), [2]);
    let rotated = Event::SigningKeyRotated {
        from: old.key().fingerprint(),
        to: new.key().fingerprint(),
    };
    assert!(events(&out).contains(&rotated), "{out:?}");
    assert!(rotated.to_string().contains(&new.key().fingerprint()));
    // The backup records the new key.
    let file = saves(&out).remove(0);
    let opened = backup::open(&file, &BackupKey::from_bytes(KEY), GW).unwrap();
    assert_eq!(opened.binding.signing_key, Some(new.key()));
    // After the overlap, the new key alone: applied; the old key alone or a
    // stranger: refused.
    h.advance(30 * SEC);
    h.fetch(new.send(3));
    assert_eq!(applied(&h.outputs()), [3]);
    for plane in [&old, &stranger] {
        h.advance(30 * SEC);
        h.fetch(plane.send(4));
        assert!(applied(&h.outputs()).is_empty());
    }
    // A gateway configured with the new key only serves the overlap's backup:
    // its snapshot carries the new key's signature.
    let mut s = settings(true, Jitter::None);
    s.management_keys = vec![new.key()];
    let mut c = Harness::new(s);
    c.outputs();
    c.agent.handle_backup_loaded(Ok(Some(&file)), c.now);
    assert_eq!(applied(&c.outputs()), [2]);
}
