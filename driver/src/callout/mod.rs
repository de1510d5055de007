//! The calls the gateway makes itself (`send-request`, `send-one-way-request`,
//! OpenID metadata, the management plane's API): the exchange loop over pooled
//! connections, and the per-gateway cap on one-way calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub mod client;

/// Most `send-one-way-request` calls in flight at once, per gateway.
pub const MAX_ONE_WAY_IN_FLIGHT: usize = 1024;

/// The `send-one-way-request` calls one gateway has in flight: cheap to clone,
/// every clone counts the same calls.
#[derive(Debug, Clone, Default)]
pub struct OneWayCalls(Arc<AtomicUsize>);

impl OneWayCalls {
    /// A place for one more `send-one-way-request`, or `None` over
    /// [`MAX_ONE_WAY_IN_FLIGHT`]: nobody waits for these, so a flood of them must
    /// not pile up tasks without bound; over the cap they are dropped.
    pub fn try_acquire(&self) -> Option<OneWaySlot> {
        let in_flight = self.0.fetch_add(1, Ordering::Relaxed);
        if in_flight >= MAX_ONE_WAY_IN_FLIGHT {
            self.0.fetch_sub(1, Ordering::Relaxed);
            None
        } else {
            Some(OneWaySlot(self.0.clone()))
        }
    }
}

/// One counted place among the one-way calls in flight, given back on drop.
#[derive(Debug)]
pub struct OneWaySlot(Arc<AtomicUsize>);

impl Drop for OneWaySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
