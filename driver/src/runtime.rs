//! The one seam between the driver and an async runtime.
//!
//! Modelled on quinn's `Runtime`: a handful of methods (spawn, timers, the
//! clocks, TCP listen and connect, blocking work, files, randomness) that
//! tokio, smol and the turmoil simulation each implement in a small file. TLS
//! is not here: the driver runs rustls over any [`Stream`], once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

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

/// A timer that can be moved to a new deadline without allocating.
pub trait Timer: Future<Output = ()> + Send + Unpin + 'static {
    /// Fires at `deadline` instead.
    fn reset(&mut self, deadline: Instant);
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
}
