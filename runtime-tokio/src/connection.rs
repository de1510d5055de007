//! Drives one client connection: moves bytes between sockets and the core's
//! `ProxyConn` and acts on its events.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use portcullis_core::proxy::{ConnSettings, Event, ProxyConn, UpstreamFailure};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;

use crate::now;
use crate::upstream::{connect, SharedPool, UpstreamConn};

/// How long a closing connection keeps draining what the client still sends, so the
/// client reads our last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// What one pass of IO did.
enum Step {
    /// Something moved or a deadline passed; run the machine again.
    Progress,
    /// The client connection failed.
    ClientGone,
}

/// Serves a client connection until it closes.
pub(crate) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    settings: Arc<ConnSettings>,
    pool: Arc<SharedPool>,
    stop: CancellationToken,
) {
    let ip = peer.ip().to_string();
    let mut conn = ProxyConn::new(settings, &ip, now());
    let mut upstream: Option<UpstreamConn> = None;
    let mut sleep = pin!(tokio::time::sleep(Duration::from_secs(3600)));
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
                        .map(tokio::time::Instant::from_std)
                        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(5));
                    let opened = tokio::time::timeout_at(
                        deadline,
                        connect(&service.host, service.port, &service.pool_key),
                    )
                    .await;
                    match opened {
                        Ok(Ok(opened)) => {
                            upstream = Some(opened);
                            conn.handle_upstream_connected(false, now());
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, backend = %service.pool_key, "backend connect failed");
                            conn.handle_upstream_failed(UpstreamFailure::ConnectFailed, now());
                        }
                        Err(_) => conn.handle_timeout(now()),
                    }
                }
                Event::ReleaseUpstream { reuse } => {
                    if let Some(up) = upstream.take() {
                        if reuse {
                            pool.checkin(up, now());
                        }
                    }
                }
                Event::CloseClient { linger } => {
                    drop(upstream.take());
                    close_client(&mut client, conn.client_pending(), linger).await;
                    return;
                }
            }
        }

        let step = poll_fn(|cx| {
            let mut progressed = false;
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
                    match Pin::new(&mut up.stream).poll_write(cx, conn.upstream_pending()) {
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
            }
            // Wait until the client is readable before asking for a buffer, so an
            // idle connection holds none (the core releases them when idle).
            while conn.wants_client_read() {
                match client.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Step::ClientGone),
                    Poll::Pending => break,
                }
                match client.try_read_buf(conn.client_read_buf()) {
                    Ok(n) => {
                        conn.handle_client_read(n, now());
                        progressed = true;
                        break;
                    }
                    // Readiness was stale; tokio cleared it, so polling again either
                    // registers the waker or finds new data.
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Poll::Ready(Step::ClientGone),
                }
            }
            if conn.wants_upstream_read() {
                if let Some(up) = upstream.as_mut() {
                    match poll_read_buf(Pin::new(&mut up.stream), cx, conn.upstream_read_buf()) {
                        Poll::Ready(Ok(n)) => {
                            conn.handle_upstream_read(n, now());
                            progressed = true;
                        }
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
async fn close_client(client: &mut TcpStream, pending: &[u8], linger: bool) {
    let _ = tokio::time::timeout(LINGER, async {
        if client.write_all(pending).await.is_err() || !linger {
            return;
        }
        if client.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 1 << 20 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
