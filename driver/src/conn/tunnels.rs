//! The gateway's limit of WebSocket tunnels open at once: a handshake takes
//! room before it goes to the backend and gives it back when its backend
//! connection is let go (a refused handshake at once, a tunnel at its end).

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many tunnels are open (or handshaking), and the most allowed.
#[derive(Debug)]
pub struct TunnelLimit {
    open: AtomicUsize,
    max: usize,
}

impl TunnelLimit {
    /// Room for `max` tunnels at once.
    pub fn new(max: usize) -> Self {
        TunnelLimit {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes room for one more; `false` when the limit is reached.
    pub fn try_acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Gives back room taken with [`TunnelLimit::try_acquire`].
    pub fn release(&self) {
        // Never below zero, whatever a caller does twice.
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                open.checked_sub(1)
            });
    }

    /// Tunnels open now (handshakes in flight included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::TunnelLimit;

    #[test]
    fn the_limit_holds_and_room_comes_back() {
        let limit = TunnelLimit::new(2);
        assert!(limit.try_acquire());
        assert!(limit.try_acquire());
        assert!(!limit.try_acquire());
        limit.release();
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire());
        limit.release();
        limit.release();
        limit.release();
        assert_eq!(limit.open(), 0);
    }
}
