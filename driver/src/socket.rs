//! A runtime's TCP connection as the driver's [`Stream`]: the `futures-io`
//! traits forwarded to the runtime's own stream once, here, and the two socket
//! checks only the runtime can make given by a small [`SocketKind`].

use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::runtime::Stream;

/// The socket checks of one runtime's streams `S` (a marker type the runtime
/// defines).
pub trait SocketKind<S>: Send + Sync + 'static {
    /// Disables Nagle's algorithm.
    fn set_nodelay(io: &S);

    /// Whether an idle connection can still be used (see [`Stream::still_open`]).
    fn still_open(io: &mut S) -> bool;

    /// Shuts the write side once `poll_close` has flushed, for a runtime whose
    /// close only flushes (async-io's): a half-close must send the FIN.
    fn shutdown_write(_io: &S) -> io::Result<()> {
        Ok(())
    }
}

/// A runtime's stream `S` with the checks of `K`.
pub struct Socket<S, K> {
    io: S,
    kind: PhantomData<fn() -> K>,
}

impl<S, K> Socket<S, K> {
    /// Wraps `io`.
    pub fn new(io: S) -> Self {
        Socket {
            io,
            kind: PhantomData,
        }
    }

    /// The runtime's stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: std::fmt::Debug, K> std::fmt::Debug for Socket<S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Socket").field(&self.io).finish()
    }
}

impl<S: AsyncRead + Unpin, K> AsyncRead for Socket<S, K> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, K: SocketKind<S>> AsyncWrite for Socket<S, K> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_close(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(K::shutdown_write(&self.io)),
            other => other,
        }
    }
}

impl<S, K> Stream for Socket<S, K>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    K: SocketKind<S>,
{
    fn set_nodelay(&self) {
        K::set_nodelay(&self.io);
    }

    fn still_open(&mut self) -> bool {
        K::still_open(&mut self.io)
    }
}
