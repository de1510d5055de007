//! `limit-concurrency`: at most `max-count` requests inside the enclosed
//! policies per key at a time.
//!
//! The pipeline evaluates the key, takes a permit with
//! `ConcurrencyLimiter::try_acquire_owned` on entering the block and drops it
//! on leaving (also when the request is abandoned, which is why the permit
//! releases on drop); without a permit the request fails with `failure()`.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::lru::SeededState;
use super::param::{eval_text, json_error_response};
use super::xml::Element;
use crate::expr::Template;

const SHARDS: usize = 16;

/// `<limit-concurrency key max-count>` (its children are compiled by the pipeline).
#[derive(Debug, Clone)]
pub struct LimitConcurrency {
    /// The concurrency scope, shared by policies with the same key.
    pub key: Template,
    /// Requests allowed inside at once.
    pub max_count: u64,
}

impl LimitConcurrency {
    /// Compiles the attributes of `<limit-concurrency>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["key", "max-count"])?;
        let max_count = attrs::parsed(el, "max-count")?
            .ok_or_else(|| PolicyError::at(el, "attribute 'max-count' is required"))?;
        Ok(LimitConcurrency {
            key: attrs::required_template(el, "key")?,
            max_count,
        })
    }

    /// The key for this request.
    pub fn resolve_key(&self, ctx: &Context) -> Result<String, Failure> {
        eval_text(&self.key, ctx)
    }
}

/// The 429 a request gets when the block is full.
pub fn failure() -> Failure {
    let message = "Too many concurrent requests.";
    Failure {
        reason: "ConcurrencyLimitExceeded".into(),
        message: message.into(),
        response: Some(Box::new(json_error_response(
            429,
            "Too Many Requests",
            message,
        ))),
    }
}

/// In-flight counts per key. Keys are removed when their count drops to zero,
/// so memory follows the number of requests in flight.
pub struct ConcurrencyLimiter {
    shards: Vec<Mutex<HashMap<Box<str>, u64, SeededState>>>,
    state: SeededState,
}

impl Default for ConcurrencyLimiter {
    fn default() -> Self {
        ConcurrencyLimiter::new(0)
    }
}

impl ConcurrencyLimiter {
    /// An empty limiter hashing with `seed` (random bytes from the runtime).
    pub fn new(seed: u128) -> Self {
        let state = SeededState::new(seed);
        ConcurrencyLimiter {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(state)))
                .collect(),
            state,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<Box<str>, u64, SeededState>> {
        let i = ((self.state.hash_one_of(key) >> 32) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place under `key` if fewer than `max` are taken.
    pub fn try_acquire(&self, key: &str, max: u64) -> bool {
        let mut shard = self.shard(key);
        match shard.get_mut(key) {
            Some(n) if *n >= max => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if max == 0 => false,
            None => {
                shard.insert(key.into(), 1);
                true
            }
        }
    }

    /// Gives back a place taken under `key`.
    pub fn release(&self, key: &str) {
        let mut shard = self.shard(key);
        if let Some(n) = shard.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.remove(key);
            }
        }
    }

    /// Places taken under `key`.
    pub fn in_flight(&self, key: &str) -> u64 {
        self.shard(key).get(key).copied().unwrap_or(0)
    }

    /// Keys with places taken.
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Takes a place that is given back when the permit is dropped.
    pub fn try_acquire_owned(self: &Arc<Self>, key: &str, max: u64) -> Option<ConcurrencyPermit> {
        self.try_acquire(key, max).then(|| ConcurrencyPermit {
            limiter: Arc::clone(self),
            key: key.into(),
        })
    }
}

/// A place inside a `limit-concurrency` block; dropping it gives the place back.
pub struct ConcurrencyPermit {
    limiter: Arc<ConcurrencyLimiter>,
    key: Box<str>,
}

impl std::fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyPermit")
            .field("key", &self.key)
            .finish()
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        self.limiter.release(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    #[test]
    fn counts_per_key_and_releases() {
        let l = ConcurrencyLimiter::new(5);
        assert!(l.try_acquire("a", 2));
        assert!(l.try_acquire("a", 2));
        assert!(!l.try_acquire("a", 2));
        assert!(l.try_acquire("b", 2));
        assert!(!l.try_acquire("c", 0));
        l.release("a");
        assert!(l.try_acquire("a", 2));
        l.release("a");
        l.release("a");
        l.release("b");
        assert_eq!(l.keys(), 0, "idle keys are forgotten");
        l.release("never");
        assert_eq!(l.in_flight("never"), 0);
    }

    #[test]
    fn permits_release_on_drop() {
        let l = Arc::new(ConcurrencyLimiter::default());
        let p1 = l.try_acquire_owned("k", 1).expect("first");
        assert!(l.try_acquire_owned("k", 1).is_none());
        drop(p1);
        let _p2 = l.try_acquire_owned("k", 1).expect("after drop");
        assert_eq!(l.in_flight("k"), 1);
    }

    #[test]
    fn compiles_and_fails_like_apim() {
        let el = xml::parse(r#"<limit-concurrency key="backend" max-count="3"><forward-request/></limit-concurrency>"#)
            .expect("xml");
        let p = LimitConcurrency::from_element(&el).expect("compiles");
        assert_eq!(p.max_count, 3);
        assert_eq!(p.resolve_key(&Context::default()).as_deref(), Ok("backend"));
        for bad in [
            r#"<limit-concurrency max-count="3"/>"#,
            r#"<limit-concurrency key="k"/>"#,
            r#"<limit-concurrency key="k" max-count="-1"/>"#,
        ] {
            assert!(LimitConcurrency::from_element(&xml::parse(bad).expect("xml")).is_err());
        }
        let f = failure();
        assert_eq!(f.response.map(|r| r.status), Some(429));
    }
}
