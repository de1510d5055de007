//! Failed sign-in throttling: after [`MAX_FAILURES`] failures for one account
//! within [`WINDOW_SECS`], that account's sign-in is refused for
//! [`LOCK_SECS`] without even checking the password. Keyed by what the user
//! typed (an email), whether or not such an account exists, so a lock says
//! nothing about which emails have accounts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Failures allowed within the window before the lock.
pub(crate) const MAX_FAILURES: u32 = 5;

/// The window failures are counted in, seconds.
pub(crate) const WINDOW_SECS: u64 = 15 * 60;

/// How long a locked account stays locked, seconds.
pub(crate) const LOCK_SECS: u64 = 15 * 60;

/// The most accounts remembered; past it the stalest are forgotten, so a flood of
/// made-up emails costs bounded memory.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: u64,
    locked_until: u64,
    last_seen: u64,
}

/// Failed attempts per account, in memory (a restart forgets them).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// Seconds until `key` may try again, or `None` when it may try now.
    pub(crate) fn locked_for(&self, key: &str, now: u64) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|e| e.locked_until > now)
            .map(|e| e.locked_until - now)
    }

    /// Notes a failed attempt for `key`; returns the lock's length when this one
    /// started it.
    pub(crate) fn failed(&self, key: &str, now: u64) -> Option<u64> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            forget_stalest(&mut entries);
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: 0,
            last_seen: now,
        });
        entry.last_seen = now;
        if now.saturating_sub(entry.window_start) >= WINDOW_SECS {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        if entry.failures >= MAX_FAILURES {
            entry.failures = 0;
            entry.window_start = now;
            entry.locked_until = now + LOCK_SECS;
            return Some(LOCK_SECS);
        }
        None
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub(crate) fn succeeded(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key);
    }
}

/// Drops the tenth of entries seen longest ago.
fn forget_stalest(entries: &mut HashMap<String, Entry>) {
    let mut seen: Vec<u64> = entries.values().map(|e| e.last_seen).collect();
    let cut = seen.len() / 10;
    let (_, &mut threshold, _) = seen.select_nth_unstable(cut);
    entries.retain(|_, e| e.last_seen > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_account_for_a_while() {
        let t = Throttle::default();
        for i in 0..MAX_FAILURES - 1 {
            assert_eq!(t.failed("a@example.com", 100 + u64::from(i)), None);
            assert_eq!(t.locked_for("a@example.com", 100 + u64::from(i)), None);
        }
        assert_eq!(t.failed("a@example.com", 110), Some(LOCK_SECS));
        assert_eq!(t.locked_for("a@example.com", 111), Some(LOCK_SECS - 1));
        // Other accounts are not affected.
        assert_eq!(t.locked_for("b@example.com", 111), None);
        // The lock ends.
        assert_eq!(t.locked_for("a@example.com", 110 + LOCK_SECS), None);
    }

    #[test]
    fn failures_outside_the_window_and_successes_reset_the_count() {
        let t = Throttle::default();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed("a", 0);
        }
        // The window has passed: counting starts again.
        assert_eq!(t.failed("a", WINDOW_SECS), None);
        assert_eq!(t.locked_for("a", WINDOW_SECS), None);
        for _ in 0..MAX_FAILURES - 2 {
            t.failed("a", WINDOW_SECS + 1);
        }
        t.succeeded("a");
        assert_eq!(t.failed("a", WINDOW_SECS + 2), None);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let t = Throttle::default();
        for i in 0..(MAX_KEYS as u64 * 3) {
            t.failed(&format!("user{i}@example.com"), i);
        }
        let n = t.entries.lock().unwrap().len();
        assert!(n <= MAX_KEYS, "{n}");
        // The most recent ones are still remembered.
        let last = MAX_KEYS as u64 * 3 - 1;
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(&format!("user{last}@example.com"), last);
        }
        assert!(t
            .locked_for(&format!("user{last}@example.com"), last)
            .is_some());
    }
}
