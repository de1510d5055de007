//! The one seam between the driver and an async runtime.
//!
//! Modelled on quinn's `Runtime`: a handful of methods (spawn, timers, the
//! clocks, TCP listen and connect, blocking work, files, randomness) that
//! tokio, smol and the turmoil simulation each implement in a small file. TLS
//! is not here: the driver runs rustls over any [`Stream`], once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::disk::Disk;

/// A connected byte stream: TCP on the runtime, or a simulated one.
///
/// The driver speaks `futures-io`'s traits, so TLS (futures-rustls) and the
/// connection pump are written once; tokio's streams are adapted with
/// `tokio-util`'s `compat`.
pub trait Stream: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static {
    /// Disables Nagle's algorithm where there is one.
    fn set_nodelay(&self) {}

    /// Whether an idle pooled connection can still be used: nothing arrived on
    /// it and it is not closed. Must not block.
    fn still_open(&mut self) -> bool;
}

/// A bound TCP listener.
pub trait Listener: Send + Sync + 'static {
    /// The connections it accepts.
    type Stream: Stream;

    /// The next connection and its peer.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A timer that can be moved to a new deadline without allocating. Not `Unpin`
/// (tokio's is not): the connection pump pins it in its own state, so an idle
/// connection's timer costs no allocation of its own.
pub trait Timer: Future<Output = ()> + Send + 'static {
    /// Fires at `deadline` instead.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// What the driver needs from an async runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A TCP connection.
    type Stream: Stream;
    /// A TCP listener.
    type Listener: Listener<Stream = Self::Stream>;
    /// A resettable timer.
    type Timer: Timer;

    /// Runs `task` in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// A timer firing at `deadline`.
    fn timer(&self, deadline: Instant) -> Self::Timer;

    /// The monotonic clock the core's `now` inputs come from.
    fn now(&self) -> Instant;

    /// The wall clock (token expiry, `context.Timestamp`).
    fn wall_clock(&self) -> SystemTime;

    /// Binds a TCP listener.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Binds a TCP listener with `SO_REUSEPORT`, so several listeners (one per
    /// thread) share `addr` and the kernel spreads connections between them.
    /// Runtimes that cannot say `Unsupported`.
    fn bind_reuse_port(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        let _ = addr;
        std::future::ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this runtime cannot bind with SO_REUSEPORT",
        )))
    }

    /// Resolves `host` and connects to `port` on it.
    fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Runs blocking work (file IO, compiling a configuration) off the async
    /// threads, or inline in a simulation; `Err` if it panicked.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, String>> + Send;

    /// Fills `out` with random bytes (the OS's, or a simulation's seeded
    /// stream); `false` if there are none.
    fn fill_random(&self, out: &mut [u8]) -> bool;

    /// The file system of the configuration backup and the telemetry buffer
    /// (used from [`blocking`](Self::blocking) work).
    fn disk(&self) -> Arc<dyn Disk>;

    /// The runtime's name for the start-up log line, if it gives one (smol
    /// does: it is not the default runtime).
    fn log_name(&self) -> Option<&'static str> {
        None
    }

    /// The fault switches this gateway runs with (simulation only; all off by
    /// default).
    #[cfg(feature = "sabotage")]
    #[doc(hidden)]
    fn sabotage(&self) -> crate::sabotage::Sabotage {
        crate::sabotage::Sabotage::default()
    }
}

/// Fills `out` from the operating system's random source; `false` if it failed
/// (the production runtimes' [`Runtime::fill_random`]).
pub fn os_random(out: &mut [u8]) -> bool {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(out).is_ok()
}

/// `N` random bytes from `rt`, if it has them.
pub(crate) fn random_bytes<R: Runtime, const N: usize>(rt: &R) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    rt.fill_random(&mut out).then_some(out)
}

/// Runs `fut` until `deadline`; `None` if the deadline passed first.
pub async fn timeout_at<R: Runtime, T>(
    rt: &R,
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let timer = rt.timer(deadline);
    futures_lite::future::or(async { Some(fut.await) }, async {
        timer.await;
        None
    })
    .await
}

/// Runs `fut` for at most `limit`; `None` if the time ran out first.
pub async fn timeout<R: Runtime, T>(
    rt: &R,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Option<T> {
    timeout_at(rt, rt.now() + limit, fut).await
}

/// Resolves `limit` from now.
pub async fn sleep<R: Runtime>(rt: &R, limit: Duration) {
    rt.timer(rt.now() + limit).await;
}

/// Resolves when `fut` does or `stop` fires, whichever is first; `None` on stop.
pub async fn until_stopped<T>(stop: &crate::stop::Stop, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        stop.cancelled().await;
        None
    })
    .await
}

/// Resolves at `deadline`, or never without one.
pub async fn sleep_until<R: Runtime>(rt: &R, deadline: Option<Instant>) {
    match deadline {
        Some(at) => rt.timer(at).await,
        None => futures_lite::future::pending().await,
    }
}
