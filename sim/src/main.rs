//! `portcullis-sim --seeds N [--from S] [--minutes M] [--limits-minutes L]
//! [--scenario all|fail-static|limits] [--no-black-holes] [--verbose]`: runs
//! seeds `S..S+N` (each seed runs the shared-limits scenario, L simulated
//! minutes, then the fail-static one, M minutes), reports each failing one with
//! the command that replays it, and exits non-zero if any failed. The
//! shared-limits faults include those that lose messages between a gateway and
//! Redis unless `--no-black-holes`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use portcullis_sim::limits::{self, LimitsOptions};
use portcullis_sim::{replay_command, run, Options};

/// Which scenarios a seed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    All,
    FailStatic,
    Limits,
}

fn main() -> ExitCode {
    let mut seeds = 10u64;
    let mut from = 0u64;
    let mut minutes = 60u64;
    let mut limits_minutes = 3u64;
    let mut scenario = Scenario::All;
    // On since the store's client replaces a connection that stops answering.
    let mut black_holes = true;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seeds" => seeds = value("--seeds"),
            "--from" => from = value("--from"),
            "--minutes" => minutes = value("--minutes"),
            "--limits-minutes" => limits_minutes = value("--limits-minutes"),
            "--scenario" => {
                scenario = match args.next().as_deref() {
                    Some("all") => Scenario::All,
                    Some("fail-static") => Scenario::FailStatic,
                    Some("limits") => Scenario::Limits,
                    other => {
                        eprintln!("--scenario takes all, fail-static or limits, not {other:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--verbose" | "-v" => verbose = true,
            "--black-holes" => black_holes = true,
            "--no-black-holes" => black_holes = false,
            "--help" | "-h" => {
                println!(
                    "usage: portcullis-sim [--seeds N] [--from S] [--minutes M] [--limits-minutes L] \
                     [--scenario all|fail-static|limits] [--no-black-holes] [--verbose]"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}; try --help");
                return ExitCode::from(2);
            }
        }
    }
    // RUST_LOG=debug shows what the gateways and the management plane log.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .init();
    }
    let options = Options {
        duration: Duration::from_secs(minutes * 60),
        ..Options::default()
    };
    let limits_options = LimitsOptions {
        duration: Duration::from_secs(limits_minutes * 60),
        black_holes,
        ..LimitsOptions::default()
    };
    let started = Instant::now();
    let mut failed = Vec::new();
    for seed in from..from + seeds {
        if scenario != Scenario::FailStatic && !run_limits(seed, &limits_options, verbose) {
            failed.push(seed);
        }
        if scenario == Scenario::Limits {
            continue;
        }
        match run(seed, &options) {
            Ok(outcome) => {
                if verbose {
                    println!("seed {seed}: plan {:#?}", outcome.plan);
                }
                println!(
                    "seed {seed}: {} in {:.2}s, {} answers, {} records stored, {} dropped, {} events, trace {:016x}",
                    if outcome.violations.is_empty() {
                        "ok"
                    } else {
                        "FAILED"
                    },
                    outcome.elapsed.as_secs_f64(),
                    outcome.answered,
                    outcome.telemetry_stored,
                    outcome.telemetry_dropped,
                    outcome.events,
                    outcome.trace_hash
                );
                if verbose {
                    // Everything but the steady stream of good answers.
                    for (ms, event) in &outcome.trace {
                        if !matches!(
                            event,
                            portcullis_sim::trace::Event::Answer {
                                answer: portcullis_sim::trace::Answer::Ok { .. },
                                ..
                            }
                        ) {
                            println!("  {:>10.3}s {event:?}", *ms as f64 / 1000.0);
                        }
                    }
                }
                let shown = if verbose { usize::MAX } else { 5 };
                for v in outcome.violations.iter().take(shown) {
                    println!("  {v}");
                }
                if !outcome.violations.is_empty() {
                    println!("  replay: {}", replay_command(seed));
                    failed.push(seed);
                }
            }
            Err(e) => {
                println!("seed {seed}: ERROR {e}\n  replay: {}", replay_command(seed));
                failed.push(seed);
            }
        }
    }
    failed.dedup();
    let real = started.elapsed().as_secs_f64();
    let per_seed = match scenario {
        Scenario::All => minutes + limits_minutes,
        Scenario::FailStatic => minutes,
        Scenario::Limits => limits_minutes,
    };
    let simulated_hours = (seeds * per_seed) as f64 / 60.0;
    println!(
        "{seeds} seeds, {} failed; {simulated_hours:.1} simulated hours in {real:.1}s real ({:.2} simulated hours per real second)",
        failed.len(),
        simulated_hours / real.max(1e-9)
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the shared-limits scenario of `seed` and reports it; whether it passed.
fn run_limits(seed: u64, options: &LimitsOptions, verbose: bool) -> bool {
    let replay = format!(
        "cargo run --release -p portcullis-sim -- --seeds 1 --from {seed} --scenario limits{} --verbose",
        if options.black_holes { "" } else { " --no-black-holes" }
    );
    match limits::run(seed, options) {
        Ok(outcome) => {
            if verbose {
                println!("seed {seed} limits: plan {:#?}", outcome.plan);
            }
            println!(
                "seed {seed} limits ({:?}, fail {:?}): {} in {:.2}s, {} admitted, {} limited, {} refused, {} unanswered, trace {:016x}",
                outcome.plan.counting,
                outcome.plan.on_failure,
                if outcome.violations.is_empty() {
                    "ok"
                } else {
                    "FAILED"
                },
                outcome.elapsed.as_secs_f64(),
                outcome.admitted,
                outcome.limited,
                outcome.refused,
                outcome.failed,
                outcome.trace_hash
            );
            if verbose {
                for (ms, event) in &outcome.trace {
                    let routine = matches!(
                        event,
                        portcullis_sim::trace::Event::LimitAnswer {
                            status: Some(200 | 429),
                            ..
                        }
                    );
                    if !routine {
                        println!("  {:>10.3}s {event:?}", *ms as f64 / 1000.0);
                    }
                }
            }
            let shown = if verbose { usize::MAX } else { 5 };
            for v in outcome.violations.iter().take(shown) {
                println!("  {v}");
            }
            if !outcome.violations.is_empty() {
                println!("  replay: {replay}");
            }
            outcome.violations.is_empty()
        }
        Err(e) => {
            println!("seed {seed} limits: ERROR {e}\n  replay: {replay}");
            false
        }
    }
}
