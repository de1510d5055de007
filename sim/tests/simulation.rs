//! The simulation is deterministic, passes on correct code, and catches each
//! kind of fail-static bug when the code is broken on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use portcullis_driver::Sabotage;
use portcullis_sim::invariants::Invariant;
use portcullis_sim::{run, Options};

fn options(minutes: u64, sabotage: Sabotage) -> Options {
    Options {
        duration: Duration::from_secs(minutes * 60),
        sabotage,
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let options = options(20, Sabotage::default());
    let a = run(7, &options).unwrap();
    let b = run(7, &options).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    let c = run(8, &options).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another run");
}

#[test]
fn correct_code_breaks_no_invariant() {
    for seed in 0..3 {
        let outcome = run(seed, &options(20, Sabotage::default())).unwrap();
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}",
            outcome.violations
        );
        assert!(outcome.answered > 1000, "seed {seed}: traffic flowed");
        assert!(
            outcome.telemetry_stored > 1000,
            "seed {seed}: the gateways uploaded their records"
        );
    }
}

/// Runs seeds until one reports `invariant`; panics if none of `seeds` does.
fn caught(invariant: Invariant, sabotage: Sabotage, seeds: std::ops::Range<u64>) {
    caught_in(20, invariant, sabotage, seeds)
}

/// [`caught`] with runs of `minutes`.
fn caught_in(minutes: u64, invariant: Invariant, sabotage: Sabotage, seeds: std::ops::Range<u64>) {
    for seed in seeds.clone() {
        let outcome = run(seed, &options(minutes, sabotage)).unwrap();
        if outcome.violations.iter().any(|v| v.invariant == invariant) {
            eprintln!("seed {seed} reported {invariant:?}");
            return;
        }
    }
    panic!("no seed in {seeds:?} reported {invariant:?} for {sabotage:?}");
}

#[test]
fn dropping_the_configuration_on_a_failed_fetch_breaks_invariant_1() {
    let sabotage = Sabotage {
        forget_config_on_failed_fetch: true,
        ..Sabotage::default()
    };
    caught(Invariant::KeepsServing, sabotage, 0..10);
}

#[test]
fn ignoring_the_backup_at_start_breaks_invariant_2() {
    let sabotage = Sabotage {
        ignore_backup_at_start: true,
        ..Sabotage::default()
    };
    caught(Invariant::RestartServesBackupOrNothing, sabotage, 0..20);
}

#[test]
fn skipping_backup_writes_breaks_invariant_3() {
    let sabotage = Sabotage {
        skip_some_backup_writes: true,
        ..Sabotage::default()
    };
    caught(Invariant::Monotonic, sabotage, 0..30);
}

#[test]
fn giving_up_after_a_failed_fetch_breaks_invariant_4() {
    let sabotage = Sabotage {
        stop_after_failed_fetch: true,
        ..Sabotage::default()
    };
    caught(Invariant::Converges, sabotage, 0..10);
}

#[test]
fn writing_the_backup_in_place_is_caught_as_a_lost_or_torn_backup() {
    // No temporary file, no fsync: a crash loses the file or tears it (the
    // simulated disk tears unsynced writes by 512-byte blocks); the core's
    // checksum refuses a torn file, so the restarted gateway serves nothing
    // where it should serve its last configuration.
    let sabotage = Sabotage {
        write_backup_in_place: true,
        ..Sabotage::default()
    };
    caught(Invariant::RestartServesBackupOrNothing, sabotage, 0..20);
}

#[test]
fn skipping_the_backup_checksum_breaks_invariant_5() {
    // Some of the damage the simulation does to a backup hits only its checksum:
    // the file still decrypts, and only the checksum tells it is damaged.
    let sabotage = Sabotage {
        skip_backup_checksum: true,
        ..Sabotage::default()
    };
    caught(Invariant::NoDamagedBackup, sabotage, 0..200);
}

#[test]
fn sending_a_retried_telemetry_batch_under_a_new_id_breaks_invariant_6() {
    // A batch the management plane stored but whose answer was lost (message
    // loss, a management crash), or that a crash left in the gateway's buffer,
    // is sent again; under a new id it is stored twice.
    let sabotage = Sabotage {
        forget_telemetry_batch_ids: true,
        ..Sabotage::default()
    };
    // Ten-minute runs: about one seed in seven loses the answer to an upload.
    caught_in(10, Invariant::TelemetryExactlyOnce, sabotage, 0..25);
}
