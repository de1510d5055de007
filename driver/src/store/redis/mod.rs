//! The shared-state store on Redis: every replica of a gateway counts its
//! limits and keeps its external cache in one Redis, so three replicas admit
//! "100 calls per minute" together, not 100 each.
//!
//! Each store operation is one Redis command, so a request's batch is one
//! round trip: rate and quota decisions and `limit-concurrency` slots are Lua
//! scripts (`scripts/`) that decide next to the data, atomically, on Redis's
//! clock; the cache is `GET`/`SET PX`/`DEL`. What the scripts return is turned
//! into the policy's outcome by the core (`policy::shared_counters`), with the
//! same arithmetic as the in-process store.
//!
//! Keys, under the gateway's prefix (default `portcullis:{gateway id}:`):
//! `rl:` rate windows, `q:` quota periods, `cc:` concurrency leases, `c:`
//! cache entries (response entries name their API).

mod approx;
pub mod client;
mod scripts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_core::config::store::{Counting, OnFailure, StoreSettings};
use portcullis_core::policy::counters::{
    QuotaAnchor, QuotaLimits, QuotaUsage, RateWindow, RATE_BUCKETS,
};
use portcullis_core::policy::quota::QuotaCounter;
use portcullis_core::policy::rate_limit::RateCounter;
use portcullis_core::policy::shared_counters::{quota_outcome, rate_cost, rate_outcome};
use portcullis_core::policy::store::{
    Cached, StoreAnswer, StoreOp, StoreRequest, StoreResult, StoreResults,
};
use redis_protocol::resp2::types::BytesFrame;

use self::approx::{Approx, SyncItem};
use self::client::{CallError, Client, Commands};
use self::scripts::Script;
use super::stats::StoreStats;
use crate::runtime::Runtime;

/// How long a `limit-concurrency` slot is held at most: a gateway that dies
/// holding slots gives them back after this long.
pub const LEASE: Duration = Duration::from_secs(120);

/// The `limit-concurrency` leases one client connection holds, by key.
pub type Leases = HashMap<String, Vec<Bytes>>;

/// A gateway's store on one Redis server.
pub struct RedisStore<R: Runtime> {
    client: Client<R>,
    prefix: String,
    settings: StoreSettings,
    stats: Arc<StoreStats>,
    /// Names this process's leases.
    instance: String,
    next_lease: AtomicU64,
    /// Approximate counting's counters (`None`: exact).
    approx: Option<Arc<Approx>>,
}

impl<R: Runtime> RedisStore<R> {
    /// A store on the Redis of `settings` (which must name one), for
    /// `gateway_id`; `instance` tells this process's leases apart.
    pub fn new(
        client: Client<R>,
        settings: StoreSettings,
        gateway_id: &str,
        instance: String,
        stats: Arc<StoreStats>,
    ) -> Self {
        client.connect();
        let prefix = settings.prefix_for(gateway_id);
        let approx = (settings.counting == Counting::Approximate).then(|| {
            let approx = Arc::new(Approx::default());
            let every = Duration::from_millis(settings.sync_interval_ms);
            let task = sync_loop(
                client.clone(),
                Arc::downgrade(&approx),
                every,
                stats.clone(),
            );
            client.runtime().spawn(task);
            approx
        });
        RedisStore {
            client,
            prefix,
            settings,
            stats,
            instance,
            next_lease: AtomicU64::new(0),
            approx,
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    fn key(&self, kind: &str, key: &str) -> Bytes {
        let mut k = String::with_capacity(self.prefix.len() + kind.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(kind);
        k.push_str(key);
        Bytes::from(k)
    }

    /// Answers `request`, every operation of it on Redis, in one round trip
    /// (approximate counters in process); `leases` are the calling
    /// connection's slots.
    pub async fn answer(&self, request: &StoreRequest, leases: &mut Leases) -> StoreAnswer {
        let now = self.stats.now();
        let mut done: Vec<Option<StoreResult>> = request
            .ops
            .iter()
            .map(|op| {
                let approx = self.approx.as_ref()?;
                approx.answer(op, &self.counter_keys(op)?, now)
            })
            .collect();
        let plan: Vec<Option<Cmd>> = request
            .ops
            .iter()
            .zip(&done)
            .map(|(op, d)| {
                if d.is_some() {
                    None
                } else {
                    self.command(op, leases)
                }
            })
            .collect();
        let mut replies = Vec::new();
        if plan.iter().any(Option::is_some) {
            let started = self.stats.now();
            match call(&self.client, plan.iter().flatten()).await {
                Ok(r) => replies = r,
                Err(e) => return self.failed(&e),
            }
            self.stats
                .observe(self.stats.now().saturating_duration_since(started));
        }
        let mut replies = replies.into_iter();
        let mut results = StoreResults::new();
        for ((op, cmd), d) in request.ops.iter().zip(&plan).zip(&mut done) {
            if let Some(r) = d.take() {
                results.push(r);
                continue;
            }
            let reply = if cmd.is_some() { replies.next() } else { None };
            match self.result(op, reply.as_ref(), leases, now) {
                Ok(r) => results.push(r),
                Err(e) => return self.failed(&e),
            }
        }
        StoreAnswer::Done(results)
    }

    /// The Redis keys of a counter operation's counters.
    fn counter_keys(&self, op: &StoreOp) -> Option<Vec<Bytes>> {
        match op {
            StoreOp::Rate { counters, .. } | StoreOp::RateAdd { counters, .. } => Some(
                counters
                    .iter()
                    .map(|c| self.key("rl:", c.key.as_str()))
                    .collect(),
            ),
            StoreOp::Quota { counters, .. } | StoreOp::QuotaAdd { counters, .. } => Some(
                counters
                    .iter()
                    .map(|c| self.key("q:", c.key.as_str()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The answer when Redis could not answer: counted, logged (rate-limited),
    /// and the gateway's failure rule.
    fn failed(&self, error: &CallError) -> StoreAnswer {
        self.stats.failed(error.reason(), &error.to_string());
        let reason = format!("redis: {error}");
        match self.settings.on_failure {
            OnFailure::Open => StoreAnswer::Unavailable(reason),
            OnFailure::Closed => StoreAnswer::Refused(reason),
        }
    }

    /// `op`'s command, or `None` when it needs none (answered here).
    fn command(&self, op: &StoreOp, leases: &mut Leases) -> Option<Cmd> {
        let script = |s: &'static Script, keys: Vec<Bytes>, args: Vec<Bytes>| {
            let mut all: Vec<Bytes> = Vec::with_capacity(1 + keys.len() + args.len());
            all.push(Bytes::from(keys.len().to_string()));
            all.extend(keys);
            all.extend(args);
            Some(Cmd {
                script: Some(s),
                args: all,
            })
        };
        let plain = |args: Vec<Bytes>| Some(Cmd { script: None, args });
        match op {
            StoreOp::Rate { counters, add } => {
                let cost = rate_cost(counters, *add);
                let (keys, args) = self.rate_args(counters, cost, add.unwrap_or(0), false);
                script(scripts::rate(), keys, args)
            }
            StoreOp::RateAdd { counters, calls } => {
                let (keys, args) = self.rate_args(counters, 0, *calls, true);
                script(scripts::rate(), keys, args)
            }
            StoreOp::Quota { counters, add } => {
                let mode = if add.is_some() { "take" } else { "check" };
                let (keys, args) = self.quota_args(counters, add.unwrap_or(0), 0, mode);
                script(scripts::quota(), keys, args)
            }
            StoreOp::QuotaAdd {
                counters,
                calls,
                bytes,
            } => {
                let (keys, args) = self.quota_args(counters, *calls, *bytes, "force");
                script(scripts::quota(), keys, args)
            }
            StoreOp::Acquire { key, max } => {
                let n = self.next_lease.fetch_add(1, Ordering::Relaxed);
                let lease = Bytes::from(format!("{}:{n}", self.instance));
                leases.entry(key.clone()).or_default().push(lease.clone());
                let args = vec![
                    Bytes::from(max.to_string()),
                    lease,
                    Bytes::from(LEASE.as_millis().to_string()),
                ];
                script(scripts::acquire(), vec![self.key("cc:", key)], args)
            }
            StoreOp::Release { key } => {
                let lease = leases.get_mut(key).and_then(Vec::pop)?;
                if leases.get(key).is_some_and(Vec::is_empty) {
                    leases.remove(key);
                }
                plain(vec![
                    Bytes::from_static(b"ZREM"),
                    self.key("cc:", key),
                    lease,
                ])
            }
            StoreOp::CacheGet { key, .. } => {
                script(scripts::cache_get(), vec![self.key("c:", key)], Vec::new())
            }
            StoreOp::CachePut {
                key, value, ttl, ..
            } => {
                if value.len() as u64 > self.settings.max_entry_bytes {
                    self.stats.skipped_large();
                    return None;
                }
                let ms = ttl.as_millis().max(1);
                plain(vec![
                    Bytes::from_static(b"SET"),
                    self.key("c:", key),
                    value.clone(),
                    Bytes::from_static(b"PX"),
                    Bytes::from(ms.to_string()),
                ])
            }
            StoreOp::CacheRemove { key, .. } => {
                plain(vec![Bytes::from_static(b"DEL"), self.key("c:", key)])
            }
            // Key sets stay in process (the driver routes them there).
            StoreOp::KeySets => None,
        }
    }

    fn rate_args(
        &self,
        counters: &[RateCounter],
        cost: u64,
        add: u64,
        force: bool,
    ) -> (Vec<Bytes>, Vec<Bytes>) {
        let keys = counters
            .iter()
            .map(|c| self.key("rl:", c.key.as_str()))
            .collect();
        let mut args = vec![
            Bytes::from(cost.to_string()),
            Bytes::from(add.to_string()),
            Bytes::from_static(if force { b"1" } else { b"0" }),
        ];
        for c in counters {
            args.push(Bytes::from(c.limit.calls.to_string()));
            args.push(Bytes::from(period_ms(c.limit.period).to_string()));
        }
        (keys, args)
    }

    fn quota_args(
        &self,
        counters: &[QuotaCounter],
        calls: u64,
        bytes: u64,
        mode: &'static str,
    ) -> (Vec<Bytes>, Vec<Bytes>) {
        let keys = counters
            .iter()
            .map(|c| self.key("q:", c.key.as_str()))
            .collect();
        let mut args = vec![
            Bytes::from(calls.to_string()),
            Bytes::from(bytes.to_string()),
            Bytes::from_static(mode.as_bytes()),
        ];
        for c in counters {
            args.extend(quota_limit_args(&c.limits));
        }
        (keys, args)
    }

    /// `op`'s result from its reply.
    fn result(
        &self,
        op: &StoreOp,
        reply: Option<&BytesFrame>,
        leases: &mut Leases,
        now: std::time::Instant,
    ) -> Result<StoreResult, CallError> {
        let reply = match reply {
            None => return Ok(StoreResult::Done),
            Some(BytesFrame::Error(e)) => return Err(CallError::Server(e.to_string())),
            Some(r) => r,
        };
        Ok(match op {
            StoreOp::Rate { counters, add } => {
                let (now_ms, admitted, windows) = rate_reply(reply, counters.len())?;
                if let (Some(a), Some(keys)) = (&self.approx, self.counter_keys(op)) {
                    a.learn_rate(counters, &keys, &windows, now_ms, now);
                }
                StoreResult::Rate(rate_outcome(
                    counters,
                    *add,
                    admitted,
                    &windows,
                    Duration::from_millis(now_ms),
                ))
            }
            StoreOp::Quota { counters, add } => {
                let (unix, admitted, usages) = quota_reply(reply, counters.len())?;
                if let (Some(a), Some(keys)) = (&self.approx, self.counter_keys(op)) {
                    a.learn_quota(counters, &keys, &usages, unix, now);
                }
                StoreResult::Quota(quota_outcome(counters, *add, admitted, &usages, unix))
            }
            StoreOp::Acquire { key, .. } => {
                let taken = client::int(reply, "acquire")? == 1;
                if !taken {
                    // Not taken: the session does not hold it.
                    if let Some(v) = leases.get_mut(key) {
                        v.pop();
                        if v.is_empty() {
                            leases.remove(key);
                        }
                    }
                }
                StoreResult::Acquired(taken)
            }
            StoreOp::CacheGet { .. } => StoreResult::Value(match reply {
                BytesFrame::Array(parts) => match parts.as_slice() {
                    [BytesFrame::BulkString(v), BytesFrame::Integer(ms)] => Some(Cached {
                        value: v.clone(),
                        ttl_left: Duration::from_millis(u64::try_from(*ms).unwrap_or(0)),
                    }),
                    _ => None,
                },
                _ => None,
            }),
            _ => StoreResult::Done,
        })
    }
}

/// Sends `cmds` in one round trip; scripts Redis does not know (it restarted,
/// or flushed them) are sent again by their text: only those commands, with
/// the same arguments, so nothing is applied twice.
async fn call<'a, R: Runtime>(
    client: &Client<R>,
    cmds: impl Iterator<Item = &'a Cmd> + Clone,
) -> Result<Vec<BytesFrame>, CallError> {
    let mut first = Commands::new();
    for c in cmds.clone() {
        c.encode(&mut first, false);
    }
    let mut replies = client.call(first).await?;
    let unknown: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, BytesFrame::Error(e) if e.starts_with("NOSCRIPT")))
        .map(|(i, _)| i)
        .collect();
    if unknown.is_empty() {
        return Ok(replies);
    }
    let mut again = Commands::new();
    for (i, c) in cmds.enumerate() {
        if unknown.contains(&i) {
            c.encode(&mut again, true);
        }
    }
    for (i, frame) in unknown.into_iter().zip(client.call(again).await?) {
        if let Some(f) = replies.get_mut(i) {
            *f = frame;
        }
    }
    Ok(replies)
}

/// Approximate counting's sync: every `every`, the calls counted here go to
/// Redis and the shared counts come back, in one round trip per 256 counters.
/// Ends when the store is dropped.
async fn sync_loop<R: Runtime>(
    client: Client<R>,
    approx: std::sync::Weak<Approx>,
    every: Duration,
    stats: Arc<StoreStats>,
) {
    loop {
        crate::runtime::sleep(client.runtime(), every).await;
        let Some(approx) = approx.upgrade() else {
            return;
        };
        let items = approx.to_sync(stats.now());
        for chunk in items.chunks(256) {
            let cmds: Vec<Cmd> = chunk.iter().map(sync_command).collect();
            let started = stats.now();
            let replies = match call(&client, cmds.iter()).await {
                Ok(r) => r,
                Err(e) => {
                    // Kept for the next sync; decisions go on locally.
                    stats.failed(e.reason(), &e.to_string());
                    break;
                }
            };
            let now = stats.now();
            stats.observe(now.saturating_duration_since(started));
            for (item, reply) in chunk.iter().zip(&replies) {
                match item {
                    SyncItem::Rate(key, _, _, sent) => {
                        if let Ok((ms, _, w)) = rate_reply(reply, 1) {
                            if let Some(w) = w.first() {
                                approx.synced_rate(key, *sent, *w, ms, now);
                            }
                        }
                    }
                    SyncItem::Quota(key, _, calls, bytes) => {
                        if let Ok((_, _, u)) = quota_reply(reply, 1) {
                            if let Some(u) = u.first() {
                                approx.synced_quota(key, *calls, *bytes, *u);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The command that adds a counter's pending calls and reads it back.
fn sync_command(item: &SyncItem) -> Cmd {
    let num = |n: u64| Bytes::from(n.to_string());
    match item {
        SyncItem::Rate(key, limit, period, pending) => Cmd {
            script: Some(scripts::rate()),
            args: vec![
                num(1),
                key.clone(),
                num(0),
                num(*pending),
                Bytes::from_static(b"1"),
                num(*limit),
                num(period_ms(*period)),
            ],
        },
        SyncItem::Quota(key, l, calls, bytes) => {
            let mut args = vec![
                num(1),
                key.clone(),
                num(*calls),
                num(*bytes),
                Bytes::from_static(b"force"),
            ];
            args.extend(quota_limit_args(l));
            Cmd {
                script: Some(scripts::quota()),
                args,
            }
        }
    }
}

/// One operation's command: a script call (`EVALSHA`, or `EVAL` by its text)
/// with `args` = key count, keys, arguments; or a plain command.
struct Cmd {
    script: Option<&'static Script>,
    args: Vec<Bytes>,
}

impl Cmd {
    fn encode(&self, cmds: &mut Commands, by_text: bool) {
        match self.script {
            None => {
                cmds.push(self.args.iter().cloned());
            }
            Some(s) => {
                let head = if by_text {
                    [
                        Bytes::from_static(b"EVAL"),
                        Bytes::from_static(s.body.as_bytes()),
                    ]
                } else {
                    [Bytes::from_static(b"EVALSHA"), Bytes::from(s.sha.clone())]
                };
                cmds.push(head.into_iter().chain(self.args.iter().cloned()));
            }
        }
    }
}

/// `quota.lua`'s arguments for one counter's limits.
fn quota_limit_args(l: &QuotaLimits) -> [Bytes; 4] {
    let max_bytes = l.kilobytes.map(|kb| kb.saturating_mul(1024));
    [
        Bytes::from(l.calls.map_or(-1, clamp).to_string()),
        Bytes::from(max_bytes.map_or(-1, clamp).to_string()),
        Bytes::from(l.period_secs.to_string()),
        match l.anchor {
            QuotaAnchor::FirstUse => Bytes::new(),
            QuotaAnchor::At(t) => Bytes::from(t.to_string()),
        },
    ]
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn period_ms(p: Duration) -> u64 {
    u64::try_from(p.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn ints(reply: &BytesFrame, what: &str) -> Result<Vec<i64>, CallError> {
    match reply {
        BytesFrame::Array(items) => items.iter().map(|f| client::int(f, what)).collect(),
        other => Err(CallError::Protocol(format!("{what}: {other:?}"))),
    }
}

/// `rate.lua`'s answer: the time, whether admitted, each counter's window.
pub fn rate_reply(
    reply: &BytesFrame,
    counters: usize,
) -> Result<(u64, bool, Vec<RateWindow>), CallError> {
    let v = ints(reply, "rate")?;
    let per = 1 + RATE_BUCKETS;
    if v.len() != 2 + counters * per {
        return Err(CallError::Protocol(format!("rate: {} values", v.len())));
    }
    let windows = v[2..]
        .chunks(per)
        .map(|c| {
            let mut counts = [0u32; RATE_BUCKETS];
            for (slot, n) in counts.iter_mut().zip(&c[1..]) {
                *slot = u32::try_from(*n).unwrap_or(u32::MAX);
            }
            RateWindow {
                head: u64::try_from(c[0]).unwrap_or(0),
                counts,
            }
        })
        .collect();
    Ok((u64::try_from(v[0]).unwrap_or(0), v[1] == 1, windows))
}

/// `quota.lua`'s answer: the time, whether admitted, each counter's period.
pub fn quota_reply(
    reply: &BytesFrame,
    counters: usize,
) -> Result<(i64, bool, Vec<QuotaUsage>), CallError> {
    let v = ints(reply, "quota")?;
    if v.len() != 2 + counters * 3 {
        return Err(CallError::Protocol(format!("quota: {} values", v.len())));
    }
    let usages = v[2..]
        .chunks(3)
        .map(|c| QuotaUsage {
            start: c[0],
            calls: u64::try_from(c[1]).unwrap_or(0),
            bytes: u64::try_from(c[2]).unwrap_or(0),
        })
        .collect();
    Ok((v[0], v[1] == 1, usages))
}

/// The remote store for `settings` (a Redis URL) on `client`.
pub fn remote<R: Runtime>(
    client: Client<R>,
    settings: StoreSettings,
    gateway_id: &str,
    instance: String,
    stats: Arc<StoreStats>,
) -> Box<dyn super::Remote> {
    Box::new(RedisStore::new(
        client, settings, gateway_id, instance, stats,
    ))
}

impl<R: Runtime> super::Remote for RedisStore<R> {
    fn answer<'a>(
        &'a self,
        request: StoreRequest,
        leases: &'a mut Leases,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = StoreAnswer> + Send + 'a>> {
        Box::pin(async move { RedisStore::answer(self, &request, leases).await })
    }

    fn release_all(&self, leases: Leases) {
        let mut cmds = Commands::new();
        for (key, ids) in leases {
            let k = self.key("cc:", &key);
            for id in ids {
                cmds.push([Bytes::from_static(b"ZREM"), k.clone(), id]);
            }
        }
        if cmds.is_empty() {
            return;
        }
        let client = self.client.clone();
        self.client.runtime().spawn(async move {
            // Lost if Redis cannot answer: the leases then expire on their own.
            let _ = client.call(cmds).await;
        });
    }
}
