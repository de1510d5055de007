//! Bookkeeping of idle keep-alive connections to backends, per backend.
//!
//! Generic over the connection type: the adapter stores its sockets here and this
//! module decides which one to reuse and when one has been idle too long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits of the idle pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most idle connections kept per backend.
    pub max_idle_per_backend: usize,
    /// Most idle connections kept in all.
    pub max_idle_total: usize,
    /// How long a connection may stay idle before it is closed.
    pub idle_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_idle_per_backend: 256,
            max_idle_total: 4096,
            // Below the common 60-75 s backend keep-alive timeouts, so the gateway is
            // usually the side that closes and seldom meets a connection the backend
            // has just closed.
            idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since: Instant,
}

/// Idle backend connections keyed by backend (`ServiceUrl::pool_key`).
#[derive(Debug)]
pub struct Pool<C> {
    limits: PoolLimits,
    // Each list is ordered by `since`: the newest at the back is reused first (it is
    // the least likely to have been closed by the backend), the oldest expire first.
    idle: HashMap<Arc<str>, Vec<Idle<C>>>,
    total: usize,
}

impl<C> Pool<C> {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        Pool {
            limits,
            idle: HashMap::new(),
            total: 0,
        }
    }

    /// Number of idle connections held.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Takes the most recently idle connection to `key` that has not expired.
    pub fn checkout(&mut self, key: &str, now: Instant) -> Option<C> {
        let list = self.idle.get_mut(key)?;
        let newest = list.last()?;
        if now.saturating_duration_since(newest.since) >= self.limits.idle_timeout {
            // The newest has expired, so all have; `poll_expired` hands them back.
            return None;
        }
        let idle = list.pop()?;
        self.total -= 1;
        Some(idle.conn)
    }

    /// Offers a clean connection for reuse; `Err` gives it back when the pool is full.
    pub fn checkin(&mut self, key: &Arc<str>, conn: C, now: Instant) -> Result<(), C> {
        if self.total >= self.limits.max_idle_total {
            return Err(conn);
        }
        let list = match self.idle.get_mut(&**key) {
            Some(list) => list,
            None => self.idle.entry(key.clone()).or_default(),
        };
        if list.len() >= self.limits.max_idle_per_backend {
            return Err(conn);
        }
        list.push(Idle { conn, since: now });
        self.total += 1;
        Ok(())
    }

    /// Removes one connection that has been idle too long, for the caller to close.
    pub fn poll_expired(&mut self, now: Instant) -> Option<C> {
        let timeout = self.limits.idle_timeout;
        let mut found = None;
        for list in self.idle.values_mut() {
            if list
                .first()
                .is_some_and(|i| now.saturating_duration_since(i.since) >= timeout)
            {
                found = Some(list.remove(0).conn);
                break;
            }
        }
        if found.is_some() {
            self.total -= 1;
        }
        self.idle.retain(|_, list| !list.is_empty());
        found
    }

    /// When the next idle connection expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.idle
            .values()
            .filter_map(|list| list.first())
            .map(|i| i.since + self.limits.idle_timeout)
            .min()
    }
}
