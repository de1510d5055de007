//! The first byte of an HTTPS connection, read before the handshake: a TLS
//! client starts with a handshake record (0x16); anything else is most often
//! plain HTTP sent to the HTTPS port, which gets a 400 saying so (as nginx
//! answers) instead of a TLS alert an HTTP client cannot read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// The content type of a TLS handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to plain HTTP on the HTTPS port.
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 49\r\nConnection: close\r\n\r\nThe plain HTTP request was sent to an HTTPS port\n";

/// A stream whose first byte was read already and is given back first.
pub struct Peeked<S> {
    first: Option<u8>,
    inner: S,
}

impl<S> Peeked<S> {
    /// `inner`, with `first` read from it before.
    pub fn new(first: u8, inner: S) -> Self {
        Peeked {
            first: Some(first),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Peeked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let (Some(first), Some(slot)) = (self.first, buf.first_mut()) {
            *slot = first;
            self.first = None;
            return Poll::Ready(Ok(1));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Peeked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
