//! Backend connections: the shared idle pool and opening new connections.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use portcullis_core::pool::{Pool, PoolLimits};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A backend connection and the pool key it belongs to.
pub(crate) struct UpstreamConn {
    pub key: Arc<str>,
    pub stream: TcpStream,
}

/// Idle backend connections shared by all client connections.
pub(crate) struct SharedPool {
    pool: Mutex<Pool<TcpStream>>,
}

impl SharedPool {
    pub fn new(limits: PoolLimits) -> Self {
        SharedPool {
            pool: Mutex::new(Pool::new(limits)),
        }
    }

    /// An idle connection to `key` that is still open, if any.
    pub fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn> {
        loop {
            let stream = self.lock().checkout(key, now)?;
            // A backend may have closed an idle connection; reading 0 bytes (or
            // anything at all) now means it is unusable. Would-block means healthy.
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    return Some(UpstreamConn {
                        key: key.clone(),
                        stream,
                    });
                }
                _ => continue,
            }
        }
    }

    /// Gives a clean connection back for reuse (closed when the pool is full).
    pub fn checkin(&self, conn: UpstreamConn, now: Instant) {
        let _ = self.lock().checkin(&conn.key, conn.stream, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool<TcpStream>> {
        // A panic while holding the lock cannot leave the pool inconsistent in a way
        // that matters (at worst a connection is lost), so poisoning is ignored.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes connections idle for too long, until `stop`.
    pub async fn reap(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self.lock().poll_timeout();
            let wake = next
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(1));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = crate::now();
            loop {
                let expired = self.lock().poll_expired(now);
                if expired.is_none() {
                    break;
                }
            }
        }
    }
}

/// Opens a new connection to a backend.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    key: &Arc<str>,
) -> std::io::Result<UpstreamConn> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(UpstreamConn {
        key: key.clone(),
        stream,
    })
}
