//! The shared-limits scenario: three replicas of one gateway share their
//! `rate-limit-by-key` counters through one Redis (the stand-in,
//! [`crate::hosts::redis`]), counting exactly (three seeds in four) or
//! approximately, while a client per replica hammers it and faults from the seed cut replicas off from Redis, slow or
//! break their links, and restart Redis. Invariants 8 to 10 ([`check`]) are
//! checked on every run.
//!
//! Hosts: `redis`, `backend`, `gw0`..`gw2` (the gateways, started from one
//! configuration file with the store in it), `client0`..`client2`. The
//! faults touch only the gateways' links to Redis and Redis itself.

pub mod check;
pub mod hosts;
pub mod plan;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use portcullis_core::config::store::{Counting, OnFailure, RedisUrl, StoreSettings, StoreUrl};

use crate::hosts::redis::{self as redis_host, RedisOptions, REDIS};
use crate::hosts::{gateway_host, SimNet, EPOCH_UNIX};
use crate::invariants::Violation;
use crate::trace::{Event, Trace};
use crate::TICK;
use hosts::LimitsGateway;
use plan::{LimitsPlan, StoreState, GATEWAYS, KEYS};

/// How a shared-limits run is set up.
#[derive(Debug, Clone)]
pub struct LimitsOptions {
    /// Simulated time of one run.
    pub duration: Duration,
    /// How the gateways count (`None`: drawn from the seed).
    pub counting: Option<Counting>,
    /// The failure rule (`None`: drawn from the seed).
    pub on_failure: Option<OnFailure>,
    /// Every replica keeps its counters in process instead of Redis (tests:
    /// invariant 8 must then fail).
    pub local_store: bool,
    /// Add the faults that lose messages between a gateway and Redis: black
    /// holes and message loss (see [`plan::StoreFault::BlackHole`]).
    pub black_holes: bool,
}

impl Default for LimitsOptions {
    fn default() -> Self {
        LimitsOptions {
            duration: Duration::from_secs(180),
            counting: None,
            on_failure: None,
            local_store: false,
            black_holes: false,
        }
    }
}

/// What one shared-limits run did.
#[derive(Debug)]
pub struct LimitsOutcome {
    pub seed: u64,
    pub plan: LimitsPlan,
    /// The broken invariants (empty: every one held).
    pub violations: Vec<Violation>,
    /// The hash of the event trace: equal for equal runs.
    pub trace_hash: u64,
    /// Requests answered 200 / 429 / 503, and not answered.
    pub admitted: usize,
    pub limited: usize,
    pub refused: usize,
    pub failed: usize,
    /// Real time the run took.
    pub elapsed: Duration,
    /// The trace.
    pub trace: Vec<(u64, Event)>,
}

/// The store's timeout: five ticks. (The default, 100 ms, is two ticks of
/// the simulation, about one round trip: every call would time out.)
pub const STORE_TIMEOUT_MS: u64 = 250;

/// How long after the last repair the gateways may take to decide with Redis
/// again: a reconnection's backoff, with slack.
pub const RECOVER_BOUND: Duration = Duration::from_secs(10);

/// The store settings of the scenario.
pub fn store_settings(counting: Counting, on_failure: OnFailure) -> Result<StoreSettings, String> {
    let url = RedisUrl::parse(&hosts::redis_url()).map_err(|e| e.to_string())?;
    Ok(StoreSettings {
        url: StoreUrl::Redis(url),
        counting,
        on_failure,
        timeout_ms: STORE_TIMEOUT_MS,
        ..StoreSettings::default()
    })
}

/// The longest interval in which exact counting admits at most `calls`: the
/// core's sliding window is twelve buckets of the period, and any interval
/// of eleven of them holds at most the limit (see
/// `portcullis_core::policy::counters`), less a millisecond for rounding.
pub fn window_ms(period_secs: u64) -> u64 {
    (period_secs * 1000 * 11 / 12).saturating_sub(1)
}

/// What the checks of a run of `plan` need.
pub fn facts(plan: &LimitsPlan) -> check::Facts {
    check::Facts {
        calls: plan.calls,
        bound: match plan.counting {
            Counting::Exact => plan.calls,
            // Each replica admits at most the limit against the counts it
            // knows; together at most the limit once per replica (the
            // driver's documented worst case).
            Counting::Approximate => plan.calls * GATEWAYS as u64,
        },
        window_ms: window_ms(plan.period_secs),
        on_failure: plan.on_failure,
        final_repair_ms: plan.final_repair.as_millis() as u64,
        recover_bound_ms: RECOVER_BOUND.as_millis() as u64,
    }
}

/// Runs one seed of the shared-limits scenario and checks its invariants.
pub fn run(seed: u64, options: &LimitsOptions) -> Result<LimitsOutcome, String> {
    let started = Instant::now();
    let plan = LimitsPlan::new(
        seed,
        options.duration,
        options.on_failure,
        options.counting,
        options.black_holes,
    );
    let mut store = store_settings(plan.counting, plan.on_failure)?;
    if options.local_store {
        store.url = StoreUrl::Local;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("gateway.json");
    let in_file = (!plan.store_from_flag).then_some(&store);
    let text = serde_json::to_vec_pretty(&hosts::config(plan.calls, plan.period_secs, in_file))
        .map_err(|e| e.to_string())?;
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let trace = Trace::default();

    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(options.duration + Duration::from_secs(60))
        .tick_duration(TICK)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .tcp_capacity(1024);
    let mut sim = builder.build();
    {
        let trace = trace.clone();
        sim.host(REDIS, move || {
            let trace = trace.clone();
            async move {
                trace.now(Event::RedisStarted);
                redis_host::serve(RedisOptions::default()).await
            }
        });
    }
    sim.host(crate::hosts::BACKEND, crate::hosts::traffic::backend);
    let net = SimNet::default();
    for gw in 0..GATEWAYS {
        let host = Arc::new(LimitsGateway {
            gw,
            config: config.clone(),
            store_flag: plan.store_from_flag.then(|| store.clone()),
            seed,
            net: net.clone(),
            starts: AtomicU64::new(0),
        });
        sim.host(gateway_host(gw).as_str(), move || {
            hosts::gateway(host.clone())
        });
    }
    for gw in 0..GATEWAYS {
        let trace = trace.clone();
        sim.host(format!("client{gw}").as_str(), move || {
            hosts::client(gw, KEYS, seed, trace.clone())
        });
    }

    let mut state = StoreState::default();
    while sim.elapsed() < options.duration {
        let want = plan.state_at(sim.elapsed());
        if want != state {
            apply(&mut sim, &state, &want, &trace);
            state = want;
        }
        sim.step()
            .map_err(|e| format!("seed {seed}: a host failed: {e}"))?;
    }
    drop(sim);

    let events = trace.events();
    let facts = facts(&plan);
    let violations = check::check(&events, &facts);
    let count = |f: &dyn Fn(Option<u16>) -> bool| {
        events
            .iter()
            .filter(|(_, e)| matches!(e, Event::LimitAnswer { status, .. } if f(*status)))
            .count()
    };
    Ok(LimitsOutcome {
        seed,
        admitted: count(&|s| s == Some(200)),
        limited: count(&|s| s == Some(429)),
        refused: count(&|s| s == Some(503)),
        failed: count(&|s| s.is_none()),
        plan,
        violations,
        trace_hash: trace.hash(),
        elapsed: started.elapsed(),
        trace: events,
    })
}

/// Moves the simulation from fault state `from` to `to`.
fn apply(sim: &mut turmoil::Sim<'_>, from: &StoreState, to: &StoreState, trace: &Trace) {
    let now = sim.elapsed().as_millis() as u64;
    for gw in 0..GATEWAYS {
        let host = gateway_host(gw);
        let host = host.as_str();
        if from.partitioned[gw] != to.partitioned[gw] {
            if to.partitioned[gw] {
                sim.hold(host, REDIS);
            } else {
                sim.release(host, REDIS);
            }
            trace.push(
                now,
                Event::Fault(format!(
                    "{host} partitioned from redis: {}",
                    to.partitioned[gw]
                )),
            );
        }
        if from.black_holed[gw] != to.black_holed[gw] {
            if to.black_holed[gw] {
                sim.partition(host, REDIS);
            } else {
                sim.repair(host, REDIS);
            }
            trace.push(
                now,
                Event::Fault(format!("{host}-redis black hole: {}", to.black_holed[gw])),
            );
        }
        if from.latency_ms[gw] != to.latency_ms[gw] {
            let latency = Duration::from_millis(to.latency_ms[gw].max(1));
            sim.set_link_latency(host, REDIS, latency);
            trace.push(
                now,
                Event::Fault(format!("{host}-redis latency: {latency:?}")),
            );
        }
        if from.loss[gw] != to.loss[gw] {
            sim.set_link_fail_rate(host, REDIS, to.loss[gw]);
            trace.push(
                now,
                Event::Fault(format!("{host}-redis loss: {}", to.loss[gw])),
            );
        }
    }
    if from.redis_down != to.redis_down {
        if to.redis_down {
            sim.crash(REDIS);
            trace.push(now, Event::RedisCrashed);
        } else {
            sim.bounce(REDIS);
        }
    }
    for gw in 0..GATEWAYS {
        if from.cut(gw) != to.cut(gw) {
            trace.push(
                now,
                Event::StoreCut {
                    gw,
                    cut: to.cut(gw),
                },
            );
        }
    }
}
