//! Fault switches that break fail-static invariants on purpose, so the
//! simulation can show it catches each kind of bug. Compiled only with the
//! `sabotage` feature, which only the simulation enables.

/// Code broken on purpose, to show that the simulation catches each kind of bug.
/// Every switch is off unless the runtime says otherwise ([`Runtime::sabotage`](crate::Runtime::sabotage)); nothing but the simulation's
/// tests turns one on. Only compiled with the `sabotage` feature, which only
/// the simulation enables.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sabotage {
    /// Drops the configuration in force when a fetch fails (invariant 1).
    pub forget_config_on_failed_fetch: bool,
    /// Never reads the backup at start (invariant 2).
    pub ignore_backup_at_start: bool,
    /// Skips writing the backup for every other applied configuration, so a
    /// restart serves an older one (invariant 3).
    pub skip_some_backup_writes: bool,
    /// Stops syncing after the first failed fetch (invariant 4).
    pub stop_after_failed_fetch: bool,
    /// Writes the backup in place, without a temporary file or fsync, so a
    /// crash loses or tears it (the simulation's disk does what a real one
    /// may): the restarted gateway cannot serve its last configuration
    /// (invariant 2; the core's checksum keeps the torn file from being served).
    pub write_backup_in_place: bool,
    /// Reads the backup without checking its checksum, as a reader that
    /// trusts the disk would (invariant 5: a file whose checksum was damaged
    /// still decrypts, and is served although the disk damaged it).
    pub skip_backup_checksum: bool,
    /// Sends every telemetry upload under a new batch id, as an uploader that
    /// forgot batch ids would: a retried batch the management plane already
    /// stored (its answer lost) is stored again (invariant 6).
    pub forget_telemetry_batch_ids: bool,
}
