//! A parked connection: idle between requests, it waits for its client's next
//! bytes, its idle timeout or the gateway's shutdown holding only a
//! [`ParkedConn`] (see [`super::serve`]).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use futures_io::AsyncRead;
use portcullis_core::proxy::{ParkedConn, ProxyConn};

use super::{Pump, SCRATCH};
use crate::runtime::{Runtime, Timer};
use crate::stop::Stop;

/// Waits until something happens to the connection parked in `pump`, then
/// gives its machine back with that fed in (bytes read, the timeout, shutdown
/// begun); `None` when the client connection failed (or nothing was parked).
///
/// A plain function returning the polling closure, not an `async fn`: the
/// future is then only what the closure captures, and it is what every idle
/// connection holds.
pub(super) fn park<'a, R: Runtime, S: AsyncRead + Unpin, F: Future<Output = ()>>(
    rt: &'a R,
    client: &'a mut S,
    mut sleep: Pin<&'a mut R::Timer>,
    mut stopping: Pin<&'a mut F>,
    stop: &'a Stop,
    pump: &'a mut Pump,
) -> impl Future<Output = Option<Box<ProxyConn>>> + 'a {
    if let Some(deadline) = pump.parked.as_ref().map(ParkedConn::deadline) {
        if pump.armed != Some(deadline) {
            pump.armed = Some(deadline);
            sleep.as_mut().reset(deadline);
        }
    }
    poll_fn(move |cx| {
        // Taken when woken: a woken connection is not polled again.
        if pump.parked.is_none() {
            return Poll::Ready(None);
        }
        if stop.is_cancelled() || stopping.as_mut().poll(cx).is_ready() {
            pump.draining = true;
            let Some(waiting) = pump.parked.take() else {
                return Poll::Ready(None);
            };
            let mut conn = Box::new(waiting.resume());
            conn.begin_shutdown();
            return Poll::Ready(Some(conn));
        }
        // The next request's first bytes (or the client's close) go through the
        // thread's scratch buffer, as on a busy connection.
        let mut woken = None;
        let read = SCRATCH.with_borrow_mut(|buf| {
            let read = Pin::new(&mut *client).poll_read(cx, buf);
            if let Poll::Ready(Ok(n)) = read {
                if let Some(waiting) = pump.parked.take() {
                    let mut conn = Box::new(waiting.resume());
                    conn.handle_client_data(&buf[..n], rt.now());
                    woken = Some(conn);
                }
            }
            read
        });
        match read {
            Poll::Ready(Ok(_)) => return Poll::Ready(woken),
            Poll::Ready(Err(_)) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if sleep.as_mut().poll(cx).is_ready() {
            pump.armed = None;
            let Some(waiting) = pump.parked.take() else {
                return Poll::Ready(None);
            };
            let mut conn = Box::new(waiting.resume());
            conn.handle_timeout(rt.now());
            return Poll::Ready(Some(conn));
        }
        Poll::Pending
    })
}
