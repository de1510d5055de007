//! The sync agent under the machine contract ([`crate::machine`]), and the
//! invariants it keeps:
//!
//! 1. **One fetch at a time.** A fetch is due or in flight, never both (the
//!    state is one enum); a new `Fetch` goes out only once the last one ended.
//! 2. **One heartbeat at a time.** While one is in flight the next is already
//!    scheduled.
//! 3. **One backup write at a time, newest last.** No save starts before the
//!    start-up load ends; a sealed file waits (`pending`) only behind a save in
//!    flight or that load, and is never older than the save it waits for.
//! 4. **A foreign backup is never overwritten.** Once the file on disk proved to
//!    be another gateway's, nothing is saved over it.
//! 5. **A deferred snapshot waits for the backup.** A fetched snapshot is held
//!    back only while its fetch counts as in flight and the backup is loading.
//! 6. **Never silent.** Unless a fetch is in flight, a deadline is set: the
//!    agent always fetches again.

use std::time::Instant;

use super::{FetchState, Output, SyncAgent};
use crate::machine::Machine;

impl Machine for SyncAgent {
    type Output = Output;

    fn poll_output(&mut self) -> Option<Output> {
        SyncAgent::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        SyncAgent::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        SyncAgent::handle_timeout(self, now)
    }

    fn check_invariants(&self) {
        let in_flight = matches!(self.fetch, FetchState::InFlight { .. });
        assert!(
            !self.heartbeat_in_flight || self.heartbeat_due.is_some(),
            "a heartbeat in flight with no next one scheduled"
        );
        if let Some(b) = &self.backup {
            assert!(
                b.pending.is_none() || b.saving.is_some() || b.loading,
                "a sealed file waits behind nothing"
            );
            assert!(
                !b.loading || b.saving.is_none(),
                "a save started before the backup was read"
            );
            assert!(
                !b.foreign || (b.pending.is_none() && b.saving.is_none()),
                "a save over another gateway's backup"
            );
            if let (Some(saving), Some((pending, _))) = (b.saving, &b.pending) {
                assert!(*pending >= saving, "an older file waits behind a newer one");
            }
        }
        if self.deferred.is_some() {
            assert!(in_flight, "a deferred snapshot outside a fetch");
            assert!(
                self.backup.as_ref().is_some_and(|b| b.loading),
                "a deferred snapshot with no backup loading"
            );
        }
        assert!(
            in_flight || SyncAgent::poll_timeout(self).is_some(),
            "the agent went silent: no fetch in flight and no deadline"
        );
    }
}
