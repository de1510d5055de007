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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PoolLimits {
        PoolLimits {
            max_idle_per_backend: 2,
            max_idle_total: 3,
            idle_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn reuses_newest_first() {
        let t0 = Instant::now();
        let key: Arc<str> = "http://a:80".into();
        let mut pool = Pool::new(limits());
        pool.checkin(&key, 1, t0).unwrap();
        pool.checkin(&key, 2, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            pool.checkout("http://a:80", t0 + Duration::from_secs(2)),
            Some(2)
        );
        assert_eq!(
            pool.checkout("http://a:80", t0 + Duration::from_secs(2)),
            Some(1)
        );
        assert_eq!(
            pool.checkout("http://a:80", t0 + Duration::from_secs(2)),
            None
        );
        assert!(pool.is_empty());
    }

    #[test]
    fn keys_are_separate() {
        let t0 = Instant::now();
        let a: Arc<str> = "http://a:80".into();
        let mut pool = Pool::new(limits());
        pool.checkin(&a, 1, t0).unwrap();
        assert_eq!(pool.checkout("http://b:80", t0), None);
        assert_eq!(pool.checkout("http://a:80", t0), Some(1));
    }

    #[test]
    fn bounded_per_backend_and_in_total() {
        let t0 = Instant::now();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let mut pool = Pool::new(limits());
        pool.checkin(&a, 1, t0).unwrap();
        pool.checkin(&a, 2, t0).unwrap();
        assert_eq!(pool.checkin(&a, 3, t0), Err(3));
        pool.checkin(&b, 4, t0).unwrap();
        assert_eq!(pool.checkin(&b, 5, t0), Err(5));
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn expired_connections_are_not_reused_and_are_handed_back() {
        let t0 = Instant::now();
        let a: Arc<str> = "a".into();
        let mut pool = Pool::new(limits());
        pool.checkin(&a, 1, t0).unwrap();
        pool.checkin(&a, 2, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(pool.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(12);
        assert_eq!(pool.poll_expired(later), Some(1));
        assert_eq!(pool.poll_expired(later), None);
        assert_eq!(pool.checkout("a", later), Some(2));
        pool.checkin(&a, 3, later).unwrap();
        let much_later = later + Duration::from_secs(20);
        assert_eq!(pool.checkout("a", much_later), None);
        assert_eq!(pool.poll_expired(much_later), Some(3));
        assert!(pool.is_empty());
        assert_eq!(pool.poll_timeout(), None);
    }
}
