//! The byte streams the adapters own, as the core's drivers see them.
//!
//! The core never opens or polls a socket itself: an adapter implements
//! [`PollStream`] for its own stream types (TCP, TLS on its runtime), and the
//! runtime-agnostic drivers in the core (the callout exchange, for one) move bytes
//! through it.

use std::io;
use std::task::{Context, Poll};

/// A connected byte stream an adapter polls on its runtime.
pub trait PollStream {
    /// Reads into `buf`; the length read (0: end of stream).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes some of `buf`; the length written.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Pushes out what the stream still buffers (TLS records, say).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts the write side (a half-close: TLS close_notify, then TCP FIN);
    /// reading goes on. A stream that cannot half-close does nothing.
    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
