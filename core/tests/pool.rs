//! Idle backend connection bookkeeping: reuse order, bounds, expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::pool::{Pool, PoolLimits};

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
