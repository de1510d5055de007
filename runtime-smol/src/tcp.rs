//! A TCP connection on async-io that trusts the readiness it has seen: after
//! a short read it waits for the reactor before reading again, instead of
//! async-io's read-first (which costs a `recvfrom` answered EAGAIN on almost
//! every wait of a request/response connection).

use std::io::{self, Read};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;

/// An `Async<TcpStream>` whose reads skip the attempt that would only say
/// EAGAIN.
#[derive(Debug)]
pub struct SmolTcp {
    io: Async<TcpStream>,
    /// Whether a read may find data: false after a short read or an EAGAIN
    /// (the kernel's buffer was emptied), true again once the reactor reports
    /// the socket readable.
    maybe_readable: bool,
}

impl SmolTcp {
    /// Wraps a connected socket (a read is tried first: data may be waiting).
    pub fn new(io: Async<TcpStream>) -> Self {
        SmolTcp {
            io,
            maybe_readable: true,
        }
    }

    /// The async-io socket.
    pub fn get_ref(&self) -> &Async<TcpStream> {
        &self.io
    }

    /// The async-io socket, mutably.
    pub fn get_mut(&mut self) -> &mut Async<TcpStream> {
        &mut self.io
    }
}

impl AsyncRead for SmolTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.maybe_readable {
                ready!(self.io.poll_readable(cx))?;
                self.maybe_readable = true;
            }
            let mut socket = self.io.get_ref();
            match socket.read(buf) {
                // A short read emptied the kernel's buffer; end of stream
                // (0) stays readable.
                Ok(n) => {
                    self.maybe_readable = n == 0 || n == buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.maybe_readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SmolTcp {
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
        Pin::new(&mut self.io).poll_close(cx)
    }
}
