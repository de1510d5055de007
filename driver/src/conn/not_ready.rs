//! The log line for requests answered 503 for lack of configuration (the
//! connection machine reports each as `Event::NotReady`), rate-limited across
//! the gateway's connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often, at most, a gateway without configuration logs that it answers 503.
pub const NOT_READY_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Logs "answering 503: no configuration" for the first such answer, then at most
/// once per [`NOT_READY_LOG_INTERVAL`] with the number left unlogged: an operator
/// sees why callers get 503 without one line per request flooding the log.
#[derive(Debug, Default)]
pub struct NotReadyLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl NotReadyLog {
    /// Notes one 503 answered for lack of configuration at `now`; returns whether
    /// it was logged.
    pub fn note(&self, now: Instant) -> bool {
        // A connection that finds the lock taken leaves the decision to the holder:
        // the request path never waits for a log line.
        let Ok(mut last) = self.last.try_lock() else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let due = match *last {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= NOT_READY_LOG_INTERVAL,
        };
        if !due {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            suppressed,
            "answering 503: no configuration (none received from the management plane or a backup yet)"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_log_is_rate_limited() {
        let log = NotReadyLog::default();
        let t0 = Instant::now();
        assert!(log.note(t0));
        assert!(!log.note(t0 + Duration::from_secs(1)));
        let later = t0 + NOT_READY_LOG_INTERVAL;
        assert!(log.note(later));
        assert!(!log.note(later));
    }
}
