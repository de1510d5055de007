//! The idle pool shared by every task of a gateway: the [`Pool`] behind a lock,
//! with the connection it hands out tagged with its pool key.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use portcullis_core::pool::{Pool, PoolLimits};

use super::stream::PollStream;

/// A backend connection and the pool key it belongs to.
#[derive(Debug)]
pub struct PooledConn<S> {
    /// The backend's pool key (`ServiceUrl::pool_key`).
    pub key: Arc<str>,
    /// The connection.
    pub stream: S,
}

impl<S: PollStream> PollStream for PooledConn<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        self.stream.poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.poll_shutdown(cx)
    }
}

/// A [`Pool`] shared between tasks (client connections, callouts, the reaper).
#[derive(Debug)]
pub struct SharedPool<S> {
    pool: Mutex<Pool<S>>,
}

impl<S> SharedPool<S> {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        SharedPool {
            pool: Mutex::new(Pool::new(limits)),
        }
    }

    /// An idle connection to `key` that `still_open` accepts, if any; those it
    /// rejects are dropped (closed).
    ///
    /// `still_open` is the adapter's check of the socket: a backend that closed an
    /// idle connection (or sent anything at all, a TLS close_notify included) has
    /// made it readable.
    pub fn checkout(
        &self,
        key: &Arc<str>,
        now: Instant,
        mut still_open: impl FnMut(&mut S) -> bool,
    ) -> Option<PooledConn<S>> {
        loop {
            let mut stream = self.lock().checkout(key, now)?;
            if still_open(&mut stream) {
                return Some(PooledConn {
                    key: key.clone(),
                    stream,
                });
            }
        }
    }

    /// Gives a clean connection back for reuse (closed when the pool is full).
    pub fn checkin(&self, conn: PooledConn<S>, now: Instant) {
        let _ = self.lock().checkin(&conn.key, conn.stream, now);
    }

    /// Closes connections idle for too long.
    pub fn close_expired(&self, now: Instant) {
        while self.lock().poll_expired(now).is_some() {}
    }

    /// When the next idle connection expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    fn lock(&self) -> MutexGuard<'_, Pool<S>> {
        // A panic while holding the lock cannot leave the pool inconsistent in a way
        // that matters (at worst a connection is lost), so poisoning is ignored.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }
}
