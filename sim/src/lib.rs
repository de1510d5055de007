//! Deterministic simulation of fail static: the real gateway (`runtime-tokio`) and
//! management plane (`management/`) on turmoil, with faults chosen from a seed and
//! the six invariants of `invariants` checked on every run.
//!
//! Hosts: `mgmt` (management plane, SQLite on a real temporary directory), `gw0`
//! and `gw1` (gateways; which keep a backup on their simulated disk depends on
//! the seed), `backend`, `client0` and `client1` (one request a second through
//! `gw0` and `gw1`, each on a path of its own), `operator` (configuration
//! changes through the management API) and `auditor` (near the end, reads back
//! the request records the gateways uploaded). Faults only touch the gateways'
//! links to the management plane, the management plane itself, the gateways'
//! processes and name resolution: backend traffic stays up, so any failed
//! request is the gateway's doing.
//!
//! A second scenario, [`limits`], runs three replicas of one gateway whose
//! `rate-limit-by-key` counters live in one Redis ([`hosts::redis`], a
//! stand-in speaking RESP2 with real Lua scripts), with faults between the
//! replicas and Redis, and checks invariants 8 to 10 (exact counting across
//! replicas, the failure rule, recovery).

pub mod faults;
pub mod hosts;
pub mod invariants;
pub mod limits;
pub mod runtime;
pub mod trace;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use portcullis_driver::api::SyncTiming;
use portcullis_driver::Sabotage;

use faults::{Plan, State};
use hosts::gateway::GatewayHost;
use hosts::{gateway_host, SimNet, EPOCH_UNIX, MANAGEMENT};
use invariants::{Facts, Violation};
use trace::{Event, Trace};

/// One simulation step.
pub const TICK: Duration = Duration::from_millis(50);

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated time of one run.
    pub duration: Duration,
    /// Code broken on purpose (tests only).
    pub sabotage: Sabotage,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(3600),
            sabotage: Sabotage::default(),
        }
    }
}

/// What one seed did.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub plan: Plan,
    /// The broken invariants (empty: every one held).
    pub violations: Vec<Violation>,
    /// The hash of the event trace: equal for equal runs.
    pub trace_hash: u64,
    /// How many events the trace holds.
    pub events: usize,
    /// Client requests answered 200.
    pub answered: usize,
    /// Request records the management plane stored (of those read at the end).
    pub telemetry_stored: usize,
    /// Records the gateways reported dropped (their upload buffer overflowed).
    pub telemetry_dropped: u64,
    /// Real time the run took.
    pub elapsed: Duration,
    /// The trace.
    pub trace: Vec<(u64, Event)>,
}

/// How long before the end of a run the auditor reads the request records.
pub const AUDIT_BEFORE_END: Duration = Duration::from_secs(60);
/// How long before the read the records read end: time for the last ones to be
/// batched (5 s) and uploaded.
pub const AUDIT_SETTLE: Duration = Duration::from_secs(60);

/// The sync timing of the simulated gateways: the defaults.
pub fn timing() -> SyncTiming {
    SyncTiming::default()
}

/// The command line that replays `seed`.
pub fn replay_command(seed: u64) -> String {
    format!("cargo run --release -p portcullis-sim -- --seeds 1 --from {seed} --verbose")
}

/// Runs one seed and checks the invariants.
pub fn run(seed: u64, options: &Options) -> Result<Outcome, String> {
    let started = Instant::now();
    let plan = Plan::new(seed, options.duration);
    // SQLite's fsyncs are real IO: on a memory file system where there is one.
    let shm = std::path::Path::new("/dev/shm");
    let data = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    let data_dir = data.path().to_path_buf();
    let tokens = hosts::management::setup(&data_dir, seed)?;
    // The auditor reads the records in the quiet final quarter (at least 150 s
    // long in a run of ten minutes or more), those stamped up to a minute
    // before: every gateway has had time to upload them, retries included.
    let audit_times = (options.duration >= Duration::from_secs(600)).then(|| {
        let read_at = options.duration - AUDIT_BEFORE_END;
        (read_at, read_at - AUDIT_SETTLE)
    });
    let audit = hosts::audit::AuditSlot::default();
    let trace = Trace::default();
    let timing = timing();

    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(options.duration + Duration::from_secs(3600))
        .tick_duration(TICK)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .tcp_capacity(1024);
    builder.fs().block_size(512);
    let mut sim = builder.build();

    {
        let trace = trace.clone();
        let data_dir = data_dir.clone();
        sim.host(MANAGEMENT, move || {
            hosts::management::serve(data_dir.clone(), seed, trace.clone())
        });
    }
    sim.host(hosts::BACKEND, hosts::traffic::backend);
    let net = SimNet::default();
    let gateways: Vec<Arc<GatewayHost>> = (0..2)
        .map(|gw| {
            Arc::new(GatewayHost {
                gw,
                token: tokens[gw].clone(),
                backup: plan.backup[gw],
                seed,
                trace: trace.clone(),
                net: net.clone(),
                timing,
                sabotage: options.sabotage,
                buffer_bytes: plan.buffer_bytes,
                corrupt_next_start: AtomicBool::new(false),
                damages: AtomicU64::new(0),
                starts: AtomicU64::new(0),
            })
        })
        .collect();
    for host in &gateways {
        let host = host.clone();
        sim.host(gateway_host(host.gw).as_str(), move || {
            hosts::gateway::serve(host.clone())
        });
    }
    for gw in 0..2 {
        let trace = trace.clone();
        sim.host(format!("client{gw}").as_str(), move || {
            hosts::traffic::client(gw, trace.clone())
        });
    }
    {
        let trace = trace.clone();
        let changes = plan.changes.clone();
        sim.host("operator", move || {
            hosts::traffic::operator(changes.clone(), trace.clone())
        });
    }

    if let Some((read_at, to)) = audit_times {
        let trace = trace.clone();
        let audit = audit.clone();
        sim.host("auditor", move || {
            hosts::audit::auditor(read_at, to, trace.clone(), audit.clone())
        });
    }

    let mut state = State::default();
    let mut repaired = false;
    while sim.elapsed() < options.duration {
        let now = sim.elapsed();
        let want = plan.state_at(now);
        if want != state {
            apply(&mut sim, &state, &want, &net, &gateways, &trace);
            state = want;
        }
        if !repaired && now >= plan.final_repair {
            repaired = true;
            trace.push(ms(now), Event::FinalRepair);
        }
        sim.step()
            .map_err(|e| format!("seed {seed}: a host failed: {e}"))?;
    }
    let end_ms = ms(sim.elapsed());
    drop(sim);

    let hosts::management::FinalState {
        revision: latest,
        beats,
        digests: latest_digests,
    } = hosts::management::final_state(&data_dir)?;
    let events = trace.events();
    let facts = Facts {
        final_repair_ms: ms(plan.final_repair),
        converge_bound_ms: converge_bound(&timing).as_millis() as u64,
        start_grace_ms: 2_000,
        latest,
        latest_digests,
        last_heartbeat_ms: beats
            .iter()
            .map(|b| b.map(|unix| unix.saturating_sub(EPOCH_UNIX) * 1000))
            .collect(),
        end_ms,
        telemetry: audit_times.map(|_| {
            audit
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| Err("the auditor did not finish before the end".into()))
        }),
    };
    let violations = invariants::check(&events, &facts);
    let answered = events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::Answer {
                    answer: trace::Answer::Ok { .. },
                    ..
                }
            )
        })
        .count();
    let (telemetry_stored, telemetry_dropped) = match &facts.telemetry {
        Some(Ok(t)) => (t.stored.values().map(|&c| c as usize).sum(), t.dropped),
        _ => (0, 0),
    };
    Ok(Outcome {
        seed,
        telemetry_stored,
        telemetry_dropped,
        plan,
        violations,
        trace_hash: trace.hash(),
        events: events.len(),
        answered,
        elapsed: started.elapsed(),
        trace: events,
    })
}

/// How long after the last repair a gateway may take to serve the latest
/// revision: the poll interval plus the backoff bound, the request timeout and a
/// little slack.
pub fn converge_bound(timing: &SyncTiming) -> Duration {
    timing.poll_interval + timing.backoff.max + timing.request_timeout + Duration::from_secs(5)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Moves the simulation from fault state `from` to `to`.
fn apply(
    sim: &mut turmoil::Sim<'_>,
    from: &State,
    to: &State,
    net: &SimNet,
    gateways: &[Arc<GatewayHost>],
    trace: &Trace,
) {
    let now = ms(sim.elapsed());
    for (gw, gateway) in gateways.iter().enumerate() {
        let host = gateway_host(gw);
        let host = host.as_str();
        if from.partitioned[gw] != to.partitioned[gw] {
            if to.partitioned[gw] {
                sim.partition(host, MANAGEMENT);
            } else {
                sim.repair(host, MANAGEMENT);
            }
            trace.push(
                now,
                Event::Fault(format!("{host} partitioned: {}", to.partitioned[gw])),
            );
        }
        if from.latency_ms[gw] != to.latency_ms[gw] {
            let latency = Duration::from_millis(to.latency_ms[gw].max(1));
            sim.set_link_latency(host, MANAGEMENT, latency);
            trace.push(now, Event::Fault(format!("{host} latency: {latency:?}")));
        }
        if from.loss[gw] != to.loss[gw] {
            sim.set_link_fail_rate(host, MANAGEMENT, to.loss[gw]);
            trace.push(now, Event::Fault(format!("{host} loss: {}", to.loss[gw])));
        }
        if from.gateway_down[gw] != to.gateway_down[gw] {
            if to.gateway_down[gw] {
                sim.crash(host);
                trace.push(now, Event::GatewayCrashed { gw });
                if to.corrupt[gw] {
                    gateway.corrupt_next_start.store(true, Ordering::Relaxed);
                }
            } else {
                sim.bounce(host);
            }
        }
    }
    if from.management_down != to.management_down {
        if to.management_down {
            sim.crash(MANAGEMENT);
            trace.push(now, Event::ManagementCrashed);
        } else {
            sim.bounce(MANAGEMENT);
        }
    }
    if from.dns_failure != to.dns_failure {
        net.dns_failure.store(to.dns_failure, Ordering::Relaxed);
        trace.push(
            now,
            Event::Fault(format!("dns failure: {}", to.dns_failure)),
        );
    }
    for gw in 0..2 {
        if from.cut(gw) != to.cut(gw) {
            trace.push(
                now,
                Event::Cut {
                    gw,
                    cut: to.cut(gw),
                },
            );
        }
    }
}
