//! The one contract every state machine in core follows.
//!
//! Modelled on str0m's `handle_input` / `poll_output` and quinn-proto's
//! connection: a machine never does IO and never reads a clock. The driver
//! (`portcullis-driver`) feeds it inputs, each carrying `now`, and after
//! **every** input drains its outputs until there are none, then sleeps until
//! [`Machine::poll_timeout`] (or the next input) and calls
//! [`Machine::handle_timeout`].
//!
//! ```text
//! handle_*(input, now)        an answer, bytes, a result: any number of kinds
//! poll_output() -> Option<O>  drained until None after every input
//! poll_timeout() -> Option<Instant>
//! handle_timeout(now)         once that deadline has passed
//! ```
//!
//! Inputs the machine did not ask for (a second answer to one request, a
//! result after a reset) are ignored, never a panic. Each machine states its
//! invariants in its module documentation and checks them in
//! [`Machine::check_invariants`], which debug builds run after every input
//! (through [`debug_check`]) and the property tests run after every step.
//!
//! The machines: the client connection (`proxy::ProxyConn`), the sync agent
//! (`sync::SyncAgent`), the telemetry uploader (`telemetry::uploader::Uploader`),
//! the OTLP span exporter (`telemetry::otlp_exporter::OtlpExporter`),
//! and the per-request ones they drive (the policy pipeline, the call-out
//! exchange, the OpenID key-set fetch).

use std::time::Instant;

/// A sans-IO state machine driven by the contract above.
pub trait Machine {
    /// What the machine asks the driver to do.
    type Output;

    /// The next output, if any; drained until `None` after every input.
    fn poll_output(&mut self) -> Option<Self::Output>;

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None`: only
    /// an input can move the machine.
    fn poll_timeout(&self) -> Option<Instant>;

    /// A deadline from [`poll_timeout`](Self::poll_timeout) has passed.
    fn handle_timeout(&mut self, now: Instant);

    /// Panics if a stated invariant does not hold (see each machine's module
    /// documentation). Cheap enough for debug builds to run after every input.
    fn check_invariants(&self);
}

/// Runs [`Machine::check_invariants`] in debug builds only.
#[inline]
pub fn debug_check<M: Machine + ?Sized>(machine: &M) {
    if cfg!(debug_assertions) {
        machine.check_invariants();
    }
}
