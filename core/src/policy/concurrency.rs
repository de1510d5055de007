//! `limit-concurrency`: at most `max-count` requests inside the enclosed
//! policies per key at a time.
//!
//! The pipeline evaluates the key and asks the store for a slot
//! (`StoreOp::Acquire`) on entering the block, and gives it back
//! (`StoreOp::Release`) on leaving it, when the response is decided, or when
//! the request is abandoned; without a slot the request fails with `failure()`.
//! [`ConcurrencyLimiter`] is the table of one thread (or one shard of the
//! driver's store).
//!
//! Invariants (checked by `check_invariants` in debug builds): a key is held
//! only while its count is above zero, so memory follows the requests in
//! flight.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::collections::HashMap;

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::lru::SeededState;
use super::param::{eval_text, json_error_response};
use super::xml::Element;
use crate::expr::Template;

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
#[derive(Debug)]
pub struct ConcurrencyLimiter {
    map: HashMap<Box<str>, u64, SeededState>,
}

impl Default for ConcurrencyLimiter {
    fn default() -> Self {
        ConcurrencyLimiter::new(0)
    }
}

impl ConcurrencyLimiter {
    /// An empty limiter hashing with `seed` (random bytes from the runtime).
    pub fn new(seed: u128) -> Self {
        ConcurrencyLimiter {
            map: HashMap::with_hasher(SeededState::new(seed)),
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.map.values().all(|&n| n > 0), "idle key kept");
    }

    /// Takes a place under `key` if fewer than `max` are taken.
    pub fn try_acquire(&mut self, key: &str, max: u64) -> bool {
        match self.map.get_mut(key) {
            Some(n) if *n >= max => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if max == 0 => false,
            None => {
                self.map.insert(key.into(), 1);
                true
            }
        }
    }

    /// Gives back a place taken under `key`.
    pub fn release(&mut self, key: &str) {
        if let Some(n) = self.map.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.map.remove(key);
            }
        }
        self.check_invariants();
    }

    /// Places taken under `key`.
    pub fn in_flight(&self, key: &str) -> u64 {
        self.map.get(key).copied().unwrap_or(0)
    }

    /// Keys with places taken.
    pub fn keys(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    #[test]
    fn counts_per_key_and_releases() {
        let mut l = ConcurrencyLimiter::new(5);
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
