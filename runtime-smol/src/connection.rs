//! Drives one client connection: moves bytes between sockets and the core's
//! `ProxyConn` and acts on its events.

use std::future::{poll_fn, Future};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use portcullis_core::callout::OneWaySlot;
use portcullis_core::proxy::{ConnSettings, Event, ProxyConn, UpstreamFailure};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{Async, Timer};

use crate::callout::Callouts;
use crate::now;
use crate::stop::Stop;
use crate::upstream::{UpstreamConn, Upstreams};

/// How long a closing connection keeps draining what the client still sends, so the
/// client reads our last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Size of the per-thread read buffer; what is read is copied into the connection's
/// own buffer, sized to what is pending.
const SCRATCH_SIZE: usize = 16 * 1024;

thread_local! {
    /// One read buffer per executor thread, so idle connections hold none.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
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
    mut client: Async<TcpStream>,
    peer: SocketAddr,
    settings: Arc<ConnSettings>,
    pool: Arc<Upstreams>,
    callouts: Callouts,
    stop: Stop,
) {
    let ip = peer.ip().to_string();
    let state = settings.policy.state.clone();
    let mut conn = ProxyConn::new(settings, &ip, now());
    let mut upstream: Option<UpstreamConn> = None;
    let mut timer = Timer::never();
    let mut armed: Option<std::time::Instant> = None;
    let mut stopping = pin!(stop.cancelled());
    let mut draining = false;

    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::ConnectUpstream { target, fresh } => {
                    let service = target.service();
                    let pooled = if fresh {
                        None
                    } else {
                        pool.checkout(&service.pool_key, now())
                    };
                    if let Some(pooled) = pooled {
                        upstream = Some(pooled);
                        conn.handle_upstream_connected(true, now());
                        continue;
                    }
                    let deadline = conn
                        .poll_timeout()
                        .unwrap_or_else(|| now() + Duration::from_secs(5));
                    // Boxed: connecting (with name resolution) is a large future that
                    // would otherwise be part of every connection's state.
                    let opened = crate::timeout_at(deadline, Box::pin(pool.connect(service))).await;
                    match opened {
                        Some(Ok(opened)) => {
                            upstream = Some(opened);
                            conn.handle_upstream_connected(false, now());
                        }
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, backend = %service.pool_key, "backend connect failed");
                            conn.handle_upstream_failed(UpstreamFailure::ConnectFailed, now());
                        }
                        None => conn.handle_timeout(now()),
                    }
                }
                Event::ReleaseUpstream { reuse } => {
                    if let Some(up) = upstream.take() {
                        if reuse {
                            pool.checkin(up, now());
                        }
                    }
                }
                Event::Call {
                    request,
                    one_way: true,
                } => {
                    if let Some(slot) = OneWaySlot::try_acquire() {
                        let callouts = callouts.clone();
                        smol::spawn(async move {
                            // Given back however the task ends.
                            let _slot = slot;
                            let url = request.url.clone();
                            if let Err(err) = callouts.perform(request.into()).await {
                                tracing::warn!(error = %err, %url, "send-one-way-request failed");
                            }
                        })
                        .detach();
                    } else {
                        tracing::warn!(url = %request.url, "send-one-way-request dropped: too many in flight");
                    }
                }
                Event::Call {
                    request,
                    one_way: false,
                } => {
                    let result = Box::pin(callouts.perform(request.into())).await;
                    conn.handle_call_done(result.map_err(|e| e.to_policy_failure()), now());
                }
                Event::CacheGet { key } => {
                    let found = state.cache.get(&key, now());
                    conn.handle_cache_done(found, now());
                }
                Event::CacheWrite { key, value, ttl } => match value {
                    Some(v) => {
                        state.cache.put(&key, v, ttl, now());
                    }
                    None => {
                        state.cache.remove(&key);
                    }
                },
                Event::Trace(t) => match t.severity.as_str() {
                    "error" => {
                        tracing::error!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
                    }
                    "information" => {
                        tracing::info!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
                    }
                    _ => {
                        tracing::debug!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
                    }
                },
                Event::CloseClient { linger } => {
                    drop(upstream.take());
                    Box::pin(close_client(&mut client, conn.client_pending(), linger)).await;
                    return;
                }
            }
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
                    let read = Pin::new(&mut client).poll_read(cx, buf);
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
                    timer.set_at(deadline);
                }
                if Pin::new(&mut timer).poll(cx).is_ready() {
                    armed = None;
                    timer = Timer::never();
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
async fn close_client(client: &mut Async<TcpStream>, pending: &[u8], linger: bool) {
    let _ = crate::timeout(LINGER, async {
        if client.write_all(pending).await.is_err() || client.flush().await.is_err() || !linger {
            return;
        }
        if client.get_ref().shutdown(Shutdown::Write).is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 1 << 20 {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
