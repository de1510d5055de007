//! Exponential backoff with jitter, drawn from a seeded generator.
//!
//! The ceiling doubles from `initial` with each consecutive failure up to `max`; the
//! wait is then drawn below it ("full" jitter: anywhere from zero, "equal" jitter:
//! from half the ceiling), so gateways that lost the management plane together do
//! not come back in step. The generator is SplitMix64 from a seed the adapter
//! takes from the OS: the same seed gives the same waits.

use std::time::Duration;

use crate::expr::encoding::splitmix64;

/// How the wait is drawn below the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Uniform in `[0, ceiling]`.
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`: spread out, yet never a tight retry.
    #[default]
    Equal,
}

/// The shape of the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The ceiling after the first failure.
    pub initial: Duration,
    /// The largest ceiling.
    pub max: Duration,
    /// How the wait is drawn below the ceiling.
    pub jitter: Jitter,
}

impl Default for BackoffPolicy {
    /// 1 s doubling to 5 s, equal jitter: a gateway retries at least every 5 s,
    /// so a change made once the plane is back arrives within seconds. A retry
    /// is one small request; the jitter keeps a fleet from retrying in step.
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: Jitter::Equal,
        }
    }
}

impl BackoffPolicy {
    /// The ceiling after `failures` consecutive failures (1 or more).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << shift).min(self.max)
    }
}

/// Consecutive failures and the generator the waits are drawn from.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff with no failures yet, drawing from `seed`.
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            failures: 0,
            rng: seed,
        }
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_within(self.policy.max)
    }

    /// Like [`next_delay`](Self::next_delay), with the ceiling held to at most
    /// `cap` (jitter still applies below it).
    pub fn next_delay_within(&mut self, cap: Duration) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.policy.ceiling(self.failures).min(cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let drawn = match self.policy.jitter {
            Jitter::None => nanos,
            Jitter::Full => self.uniform(nanos),
            Jitter::Equal => nanos / 2 + self.uniform(nanos - nanos / 2),
        };
        Duration::from_nanos(drawn)
    }

    /// A success: the next failure starts from the initial ceiling again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Uniform in `[0, bound]` (multiply-shift; the bias is far below a nanosecond).
    fn uniform(&mut self, bound: u64) -> u64 {
        let r = splitmix64(&mut self.rng);
        ((u128::from(r) * (u128::from(bound) + 1)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> BackoffPolicy {
        BackoffPolicy {
            jitter,
            ..BackoffPolicy::default()
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (1..=6).map(|n| p.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 5, 5, 5]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(5));
        let long = BackoffPolicy {
            max: Duration::from_secs(60),
            ..p
        };
        let secs: Vec<u64> = (1..=9).map(|n| long.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let mut b = Backoff::new(policy(Jitter::None), 0);
        let waits: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5]);
    }

    #[test]
    fn jitter_stays_within_its_range() {
        for seed in 0..200 {
            let mut full = Backoff::new(policy(Jitter::Full), seed);
            let mut equal = Backoff::new(policy(Jitter::Equal), seed);
            for n in 1..=10 {
                let ceiling = BackoffPolicy::default().ceiling(n);
                let f = full.next_delay();
                assert!(f <= ceiling, "full {f:?} > {ceiling:?}");
                let e = equal.next_delay();
                assert!(
                    e <= ceiling && e >= ceiling / 2,
                    "equal {e:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits_and_seeds_differ() {
        let run = |seed| {
            let mut b = Backoff::new(policy(Jitter::Full), seed);
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Spread: over many seeds the first capped wait takes many values.
        let distinct: std::collections::BTreeSet<_> = (0..100).map(|s| run(s)[9]).collect();
        assert!(distinct.len() > 90, "{}", distinct.len());
    }

    #[test]
    fn a_lower_cap_holds_the_ceiling() {
        let long = BackoffPolicy {
            max: Duration::from_secs(60),
            ..policy(Jitter::None)
        };
        let mut b = Backoff::new(long, 0);
        let cap = Duration::from_secs(10);
        let waits: Vec<u64> = (0..7).map(|_| b.next_delay_within(cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10, 10]);
        let mut b = Backoff::new(policy(Jitter::Equal), 3);
        for _ in 0..20 {
            let w = b.next_delay_within(cap);
            assert!(w <= cap);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(policy(Jitter::None), 1);
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.failures(), 5);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
