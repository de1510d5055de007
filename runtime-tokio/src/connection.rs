//! Drives one client connection: moves bytes between sockets and the core's
//! `ProxyConn` and acts on its events.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use portcullis_core::callout::CalloutRequest;
use portcullis_core::config::ServiceUrl;
use portcullis_core::proxy::{ConnSettings, ProxyConn, UpstreamFailure};
use portcullis_driver::callout::OneWaySlot;
use portcullis_driver::conn::events::{handle_events, one_way_call, AfterEvents, ConnHost};
use portcullis_driver::upstream::stream::PollStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::callout::Callouts;
use crate::env::NetStream;
use crate::now;
use crate::upstream::{UpstreamConn, Upstreams};

/// How long a closing connection keeps draining what the client still sends, so the
/// client reads our last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Size of the per-thread read buffer; what is read is copied into the connection's
/// own buffer, sized to what is pending.
const SCRATCH_SIZE: usize = 16 * 1024;

thread_local! {
    /// One read buffer per worker thread, so idle connections hold none.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

/// Reads what `stream` has into `buf`; the length read (0: end of stream). Pending
/// until something is there, so no buffer is needed before data arrives.
///
/// Through `AsyncRead::poll_read` rather than readiness plus `try_read`: tokio then
/// forgets the readiness after a short read, which spares the `EAGAIN` read that
/// would otherwise follow every request.
pub(crate) fn poll_read_net(
    stream: &mut NetStream,
    cx: &mut std::task::Context<'_>,
    buf: &mut [u8],
) -> Poll<std::io::Result<usize>> {
    let mut read = ReadBuf::new(buf);
    std::task::ready!(Pin::new(stream).poll_read(cx, &mut read))?;
    Poll::Ready(Ok(read.filled().len()))
}

/// What a client connection's events need from tokio: the backend pool, the
/// callout client, tasks and the clock.
struct Host<'a> {
    pool: &'a Upstreams,
    callouts: &'a Callouts,
}

impl ConnHost for Host<'_> {
    type Upstream = UpstreamConn;
    type Calls = Callouts;

    fn now(&self) -> std::time::Instant {
        now()
    }

    fn checkout(&self, key: &Arc<str>, now: std::time::Instant) -> Option<UpstreamConn> {
        self.pool.checkout(key, now)
    }

    fn checkin(&self, upstream: UpstreamConn, now: std::time::Instant) {
        self.pool.checkin(upstream, now);
    }

    async fn connect(
        &self,
        service: &ServiceUrl,
        deadline: std::time::Instant,
    ) -> Option<std::io::Result<UpstreamConn>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::time::timeout_at(deadline, self.pool.connect(service))
            .await
            .ok()
    }

    fn calls(&self) -> &Callouts {
        self.callouts
    }

    fn one_way_slot(&self) -> Option<OneWaySlot> {
        self.callouts.one_way.try_acquire()
    }

    fn spawn_one_way(&self, request: CalloutRequest, slot: OneWaySlot) {
        tokio::spawn(one_way_call(self.callouts.clone(), request, slot));
    }
}

/// What one pass of IO did.
enum Step {
    /// Something moved or a deadline passed; run the machine again.
    Progress,
    /// The client connection failed.
    ClientGone,
}

/// Serves a client connection until it closes.
pub(crate) async fn serve(
    mut client: NetStream,
    peer: SocketAddr,
    settings: Arc<ConnSettings>,
    pool: Arc<Upstreams>,
    callouts: Callouts,
    stop: CancellationToken,
) {
    let ip = peer.ip().to_string();
    let state = settings.policy.state.clone();
    let mut conn = ProxyConn::new(settings, &ip, now());
    let mut upstream: Option<UpstreamConn> = None;
    let mut sleep = pin!(tokio::time::sleep(Duration::from_secs(3600)));
    let mut armed: Option<std::time::Instant> = None;
    let mut stopping = pin!(stop.cancelled());
    let mut draining = false;

    let host = Host {
        pool: &pool,
        callouts: &callouts,
    };

    loop {
        if let AfterEvents::Close { linger } =
            handle_events(&mut conn, &host, &mut upstream, &state).await
        {
            Box::pin(close_client(&mut client, conn.client_pending(), linger)).await;
            return;
        }

        let step = poll_fn(|cx| {
            let mut progressed = false;
            // Checked before anything moves, and again before a response is taken in,
            // so a response whose head is written after shutdown began says
            // `Connection: close`.
            if !draining && stop.is_cancelled() {
                draining = true;
                conn.begin_shutdown();
                return Poll::Ready(Step::Progress);
            }
            while !conn.client_pending().is_empty() {
                match Pin::new(&mut client).poll_write(cx, conn.client_pending()) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        return Poll::Ready(Step::ClientGone)
                    }
                    Poll::Ready(Ok(n)) => {
                        conn.client_written(n, now());
                        progressed = true;
                    }
                    Poll::Pending => break,
                }
            }
            if let Some(up) = upstream.as_mut() {
                while !conn.upstream_pending().is_empty() {
                    match up.stream.poll_write(cx, conn.upstream_pending()) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            conn.upstream_written(n, now());
                            progressed = true;
                        }
                        Poll::Ready(_) => {
                            conn.handle_upstream_failed(UpstreamFailure::Io, now());
                            return Poll::Ready(Step::Progress);
                        }
                        Poll::Pending => break,
                    }
                }
                if let Poll::Ready(Err(_)) = up.stream.poll_flush(cx) {
                    conn.handle_upstream_failed(UpstreamFailure::Io, now());
                    return Poll::Ready(Step::Progress);
                }
            }
            if conn.wants_client_read() {
                let read = SCRATCH.with_borrow_mut(|buf| {
                    let read = poll_read_net(&mut client, cx, buf);
                    if let Poll::Ready(Ok(n)) = read {
                        conn.handle_client_data(&buf[..n], now());
                    }
                    read
                });
                match read {
                    Poll::Ready(Ok(_)) => progressed = true,
                    Poll::Ready(Err(_)) => return Poll::Ready(Step::ClientGone),
                    Poll::Pending => {}
                }
            }
            if conn.wants_upstream_read() {
                if let Some(up) = upstream.as_mut() {
                    if !draining && stop.is_cancelled() {
                        draining = true;
                        conn.begin_shutdown();
                    }
                    let read = SCRATCH.with_borrow_mut(|buf| {
                        let read = up.stream.poll_read(cx, buf);
                        if let Poll::Ready(Ok(n)) = read {
                            conn.handle_upstream_data(&buf[..n], now());
                        }
                        read
                    });
                    match read {
                        Poll::Ready(Ok(_)) => progressed = true,
                        Poll::Ready(Err(_)) => {
                            conn.handle_upstream_failed(UpstreamFailure::Io, now());
                            progressed = true;
                        }
                        Poll::Pending => {}
                    }
                }
            }
            if progressed {
                return Poll::Ready(Step::Progress);
            }
            if !draining && stopping.as_mut().poll(cx).is_ready() {
                draining = true;
                conn.begin_shutdown();
                return Poll::Ready(Step::Progress);
            }
            if let Some(deadline) = conn.poll_timeout() {
                if armed != Some(deadline) {
                    armed = Some(deadline);
                    sleep
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(deadline));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    armed = None;
                    conn.handle_timeout(now());
                    return Poll::Ready(Step::Progress);
                }
            }
            Poll::Pending
        })
        .await;

        if let Step::ClientGone = step {
            return;
        }
    }
}

/// Writes the last bytes and closes; with `linger`, closes our side first and drains
/// the client's for a moment so a final error response is read rather than lost to a
/// reset.
async fn close_client(client: &mut NetStream, pending: &[u8], linger: bool) {
    let _ = tokio::time::timeout(LINGER, async {
        if client.write_all(pending).await.is_err() || !linger {
            return;
        }
        if client.shutdown().await.is_err() {
            return;
        }
        let client = match client {
            NetStream::Tcp(tcp) => tcp,
            NetStream::Other(other) => {
                let mut buf = vec![0u8; 4096];
                let mut drained = 0usize;
                while drained < 1 << 20 {
                    match other.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => drained += n,
                    }
                }
                return;
            }
        };
        // Drained through the thread's scratch buffer: a buffer here would be part
        // of every connection's future, idle or not.
        let mut drained = 0usize;
        while drained < 1 << 20 {
            if client.readable().await.is_err() {
                return;
            }
            match SCRATCH.with_borrow_mut(|buf| client.try_read(buf)) {
                Ok(0) => return,
                Ok(n) => drained += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
