//! State that policies share across connections: counters, concurrency slots,
//! OpenID key sets. One per gateway, driven by `now` inputs.

use std::sync::Arc;
use std::time::Instant;

use super::cache_store::CacheStore;
use super::concurrency::ConcurrencyLimiter;
use super::counters::{QuotaStore, RateLimiter, DEFAULT_MAX_KEYS};
use super::jwt::KeySets;

/// The shared stores of a gateway.
pub struct PolicyState {
    /// `rate-limit` and `rate-limit-by-key` windows.
    pub rates: RateLimiter<Instant>,
    /// `quota` and `quota-by-key` periods.
    pub quotas: QuotaStore,
    /// `limit-concurrency` slots.
    pub concurrency: Arc<ConcurrencyLimiter>,
    /// Keys fetched from `validate-jwt`'s `<openid-config>` documents.
    pub key_sets: KeySets,
    /// The built-in cache of `cache-*` policies, bounded in bytes.
    pub cache: CacheStore<Instant>,
}

/// Bytes the built-in cache may hold by default.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl PolicyState {
    /// Empty stores; `seed` keys their hashing (an adapter picks it at random, so
    /// clients cannot aim counter keys at one shard).
    pub fn new(seed: u128) -> Self {
        PolicyState {
            rates: RateLimiter::new(DEFAULT_MAX_KEYS, seed),
            quotas: QuotaStore::new(DEFAULT_MAX_KEYS, seed.rotate_left(17)),
            concurrency: Arc::new(ConcurrencyLimiter::new(seed.rotate_left(41))),
            key_sets: KeySets::new(),
            cache: CacheStore::new(DEFAULT_CACHE_BYTES, seed.rotate_left(77)),
        }
    }
}

impl std::fmt::Debug for PolicyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyState")
            .field("rate_keys", &self.rates.len())
            .finish_non_exhaustive()
    }
}

impl Default for PolicyState {
    fn default() -> Self {
        PolicyState::new(0x5eed)
    }
}
