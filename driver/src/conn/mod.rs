//! Client connections: the byte pump around the core's `ProxyConn` and what
//! its events ask for.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::AsyncWriteExt;
use portcullis_core::callout::CalloutRequest;
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::UpstreamTls;
use portcullis_core::proxy::{ConnSettings, IdSeq, ParkedConn, ProxyConn, UpstreamFailure};

use crate::callout::{Callouts, OneWayCalls, OneWaySlot};
use crate::runtime::{Runtime, Timer};
use crate::stop::Stop;
use crate::store::InProcessStore;
use crate::upstream::stream::PollStream;
use crate::upstream::{UpstreamConn, Upstreams};

pub mod events;
pub mod not_ready;
mod park;
pub mod tunnels;

use events::{handle_events, one_way_call, AfterEvents, ConnHost};
use not_ready::NotReadyLog;
use tunnels::TunnelLimit;

/// How long a closing connection keeps draining what the client still sends, so the
/// client reads our last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Size of the per-thread read buffer; what is read is copied into the connection's
/// own buffer, sized to what is pending. Public so the in-memory test harness
/// reads in the same pieces.
pub const SCRATCH_SIZE: usize = 16 * 1024;

thread_local! {
    /// One read buffer per worker thread, so idle connections hold none.
    pub(crate) static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

/// What every client connection of a gateway shares: the backend pool, the
/// callout client and the one-way calls in flight.
pub struct Shared<R: Runtime> {
    /// The settings of the HTTP listener's connections (the HTTPS listener's
    /// differ only in their scheme).
    pub settings: Arc<ConnSettings>,
    /// The policies' shared state (counters, cache, slots, key sets).
    pub store: Arc<InProcessStore>,
    /// Backend connections.
    pub pool: Arc<Upstreams<R>>,
    /// The client for `send-request` calls.
    pub callouts: Callouts<R>,
    /// The gateway's `send-one-way-request` calls in flight.
    pub one_way: OneWayCalls,
    /// The "answering 503: no configuration" log line, rate-limited.
    pub not_ready_log: NotReadyLog,
    /// Numbers the connections accepted, so each draws request ids of its own.
    pub conns: AtomicU64,
    /// The WebSocket tunnels open across the gateway, and their limit (shared
    /// by a thread-per-core gateway's workers).
    pub tunnels: Arc<TunnelLimit>,
}

/// What a client connection's events need from the runtime: the backend pool,
/// the callout client, tasks and the clock.
struct Host<'a, R: Runtime> {
    rt: &'a R,
    shared: &'a Shared<R>,
    /// This connection holds room in the gateway's tunnel limit.
    tunnel: std::sync::atomic::AtomicBool,
}

impl<R: Runtime> Drop for Host<'_, R> {
    /// A connection that ends (its task dropped too) gives its room back.
    fn drop(&mut self) {
        self.release_tunnel();
    }
}

impl<R: Runtime> ConnHost for Host<'_, R> {
    type Upstream = UpstreamConn<R>;
    type Calls = Callouts<R>;

    fn now(&self) -> Instant {
        self.rt.now()
    }

    fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn<R>> {
        self.shared.pool.checkout(key, now)
    }

    fn checkin(&self, upstream: UpstreamConn<R>, now: Instant) {
        self.shared.pool.checkin(upstream, now);
    }

    async fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&Arc<UpstreamTls>>,
        key: &Arc<str>,
        deadline: Instant,
    ) -> Option<std::io::Result<UpstreamConn<R>>> {
        let connect = self
            .shared
            .pool
            .connect(service, tls.map(|t| &**t), key.clone());
        crate::runtime::timeout_at(self.rt, deadline, connect).await
    }

    fn calls(&self) -> &Callouts<R> {
        &self.shared.callouts
    }

    fn one_way_slot(&self) -> Option<OneWaySlot> {
        self.shared.one_way.try_acquire()
    }

    fn spawn_one_way(
        &self,
        request: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
        slot: OneWaySlot,
    ) {
        let calls = self.shared.callouts.clone();
        self.rt.spawn(one_way_call(calls, request, tls, slot));
    }

    fn note_not_ready(&self, now: Instant) {
        self.shared.not_ready_log.note(now);
    }

    fn reserve_tunnel(&self) -> bool {
        // One connection's own flag (a task's futures must be Send + Sync).
        if !self.tunnel.load(Ordering::Relaxed) && self.shared.tunnels.try_acquire() {
            self.tunnel.store(true, Ordering::Relaxed);
        }
        self.tunnel.load(Ordering::Relaxed)
    }

    fn release_tunnel(&self) {
        if self.tunnel.swap(false, Ordering::Relaxed) {
            self.shared.tunnels.release();
        }
    }
}

/// What one pass of IO did.
enum Step {
    /// Something moved or a deadline passed; run the machine again.
    Progress,
    /// The client connection failed.
    ClientGone,
    /// The connection is idle with nothing pending: it parks.
    Park,
}

/// What a connection's two halves (busy, parked) share about its timer and
/// shutdown.
struct Pump {
    /// The deadline the timer is set to, if it is one the machine asked for.
    armed: Option<Instant>,
    /// Shutdown was seen (and the stop future may have completed: it is not
    /// polled again).
    draining: bool,
    /// The machine while the connection is parked.
    parked: Option<ParkedConn>,
    /// A TLS connection (the HTTPS listener's): its close sends close_notify.
    tls: bool,
}

/// Serves a client connection until it closes: `client` is the accepted TCP
/// stream, or the TLS stream over it on the HTTPS listener, whose `settings`
/// say `https` and whose `client_cert` is the certificate the client sent in
/// the handshake, if any.
///
/// What this future holds itself is what an idle connection holds: the
/// stream, the timer, the stop signal and a [`ParkedConn`]. The machine, the
/// backend connection and the store session live in the busy half's future
/// (`busy`), boxed, while the connection is busy or has been idle for less
/// than the second after which it gives its buffers back
/// (`ProxyConn::can_park`); ten thousand idle keep-alive connections then hold
/// no state machine.
///
/// A plain function that sets the machine up and returns the connection's
/// future: its arguments (the peer's address, the settings) are then not held
/// by every idle connection.
pub fn serve<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    rt: R,
    client: S,
    peer: SocketAddr,
    settings: Arc<ConnSettings>,
    client_cert: Option<Arc<ClientCertificate>>,
    shared: Arc<Shared<R>>,
    stop: Stop,
) -> impl Future<Output = ()> {
    let ids = IdSeq::new(shared.conns.fetch_add(1, Ordering::Relaxed));
    // The HTTPS listener's connections are the TLS ones (see `close_client`).
    let tls = settings.proto == "https";
    // Boxed, here and when a parked connection wakes: a machine held by value
    // would take its room in the connection's future even while parked.
    let mut conn = Box::new(ProxyConn::new(
        settings,
        &peer.ip().to_string(),
        ids,
        rt.now(),
    ));
    if client_cert.is_some() {
        conn.set_client_certificate(client_cert);
    }
    pump(rt, client, conn, shared, stop, tls)
}

/// Runs a connection's machine `conn`, busy or parked by turns, until it
/// closes.
async fn pump<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    rt: R,
    mut client: S,
    mut conn: Box<ProxyConn>,
    shared: Arc<Shared<R>>,
    stop: Stop,
    tls: bool,
) {
    let mut sleep = pin!(rt.timer(rt.now() + Duration::from_secs(3600)));
    let mut stopping = pin!(stop.cancelled());
    let mut pump = Pump {
        armed: None,
        draining: false,
        parked: None,
        tls,
    };
    loop {
        // Boxed: only a busy connection carries the machine and its future.
        let busy = busy(
            &rt,
            &mut client,
            conn,
            &shared,
            &stop,
            sleep.as_mut(),
            stopping.as_mut(),
            &mut pump,
        );
        if !Box::pin(busy).await {
            return;
        }
        let parked = park::park(
            &rt,
            &mut client,
            sleep.as_mut(),
            stopping.as_mut(),
            &stop,
            &mut pump,
        );
        match parked.await {
            Some(woken) => conn = woken,
            None => return,
        }
    }
}

/// Runs `conn` until the connection closes (`false`) or parks (`true`: its
/// compact form is in `pump.parked`).
#[allow(clippy::too_many_arguments)] // one connection's parts, borrowed from `serve`
async fn busy<R: Runtime, S: AsyncRead + AsyncWrite + Unpin, F: Future<Output = ()>>(
    rt: &R,
    client: &mut S,
    mut conn: Box<ProxyConn>,
    shared: &Shared<R>,
    stop: &Stop,
    mut sleep: Pin<&mut R::Timer>,
    mut stopping: Pin<&mut F>,
    pump: &mut Pump,
) -> bool {
    // Gives back, when the connection ends or parks, any concurrency slot it
    // still holds (a parked connection holds none).
    let mut store = shared.store.session();
    let mut upstream: Option<UpstreamConn<R>> = None;
    let host = Host {
        rt,
        shared,
        tunnel: std::sync::atomic::AtomicBool::new(false),
    };

    loop {
        if let AfterEvents::Close { linger } =
            handle_events(&mut conn, &host, &mut upstream, &mut store).await
        {
            Box::pin(close_client(
                rt,
                client,
                conn.client_pending(),
                linger,
                pump.tls,
            ))
            .await;
            return false;
        }

        let step = poll_fn(|cx| {
            let mut progressed = false;
            // Checked before anything moves, and again before a response is taken in,
            // so a response whose head is written after shutdown began says
            // `Connection: close`.
            if !pump.draining && stop.is_cancelled() {
                pump.draining = true;
                conn.begin_shutdown();
                return Poll::Ready(Step::Progress);
            }
            while !conn.client_pending().is_empty() {
                match Pin::new(&mut *client).poll_write(cx, conn.client_pending()) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        return Poll::Ready(Step::ClientGone)
                    }
                    Poll::Ready(Ok(n)) => {
                        conn.client_written(n, rt.now());
                        progressed = true;
                    }
                    Poll::Pending => break,
                }
            }
            // TLS keeps records it could not send yet; plain TCP has nothing to flush.
            if let Poll::Ready(Err(_)) = Pin::new(&mut *client).poll_flush(cx) {
                return Poll::Ready(Step::ClientGone);
            }
            if let Some(up) = upstream.as_mut() {
                while !conn.upstream_pending().is_empty() {
                    match up.stream.poll_write(cx, conn.upstream_pending()) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            conn.upstream_written(n, rt.now());
                            progressed = true;
                        }
                        Poll::Ready(_) => {
                            conn.handle_upstream_failed(UpstreamFailure::Io, rt.now());
                            return Poll::Ready(Step::Progress);
                        }
                        Poll::Pending => break,
                    }
                }
                if let Poll::Ready(Err(_)) = up.stream.poll_flush(cx) {
                    conn.handle_upstream_failed(UpstreamFailure::Io, rt.now());
                    return Poll::Ready(Step::Progress);
                }
            }
            // A WebSocket tunnel passes each side's close on as a half-close.
            if conn.wants_upstream_shutdown() {
                let shut = upstream
                    .as_mut()
                    .map_or(Poll::Ready(Ok(())), |up| up.poll_shutdown(cx));
                if shut.is_ready() {
                    conn.upstream_shut_down(rt.now());
                    progressed = true;
                }
            }
            if conn.wants_client_shutdown() && Pin::new(&mut *client).poll_close(cx).is_ready() {
                conn.client_shut_down(rt.now());
                progressed = true;
            }
            if conn.wants_client_read() {
                // Through `poll_read` rather than readiness plus a read: tokio then
                // forgets the readiness after a short read, which spares the
                // `EAGAIN` read that would otherwise follow every request.
                let read = SCRATCH.with_borrow_mut(|buf| {
                    let read = Pin::new(&mut *client).poll_read(cx, buf);
                    if let Poll::Ready(Ok(n)) = read {
                        conn.handle_client_data(&buf[..n], rt.now());
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
                    if !pump.draining && stop.is_cancelled() {
                        pump.draining = true;
                        conn.begin_shutdown();
                    }
                    let read = SCRATCH.with_borrow_mut(|buf| {
                        let read = up.stream.poll_read(cx, buf);
                        if let Poll::Ready(Ok(n)) = read {
                            conn.handle_upstream_data(&buf[..n], rt.now());
                        }
                        read
                    });
                    match read {
                        Poll::Ready(Ok(_)) => progressed = true,
                        Poll::Ready(Err(_)) => {
                            conn.handle_upstream_failed(UpstreamFailure::Io, rt.now());
                            progressed = true;
                        }
                        Poll::Pending => {}
                    }
                }
            }
            if progressed {
                return Poll::Ready(Step::Progress);
            }
            if !pump.draining && stopping.as_mut().poll(cx).is_ready() {
                pump.draining = true;
                conn.begin_shutdown();
                return Poll::Ready(Step::Progress);
            }
            if let Some(deadline) = conn.poll_timeout() {
                if pump.armed != Some(deadline) {
                    pump.armed = Some(deadline);
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    pump.armed = None;
                    conn.handle_timeout(rt.now());
                    return Poll::Ready(Step::Progress);
                }
            }
            // Idle with its buffers given back: nothing but the wakers just
            // registered (client readable, timer, stop) can move it now.
            if !pump.draining && upstream.is_none() && store.holds_nothing() && conn.can_park() {
                return Poll::Ready(Step::Park);
            }
            Poll::Pending
        })
        .await;

        match step {
            Step::Progress => {}
            Step::ClientGone => return false,
            Step::Park => {
                pump.parked = conn.park();
                if pump.parked.is_some() {
                    return true;
                }
            }
        }
    }
}

/// Writes the last bytes and closes; with `linger`, closes our side first and drains
/// the client's for a moment so a final error response is read rather than lost to a
/// reset. A plain TCP connection closed cleanly gets no `shutdown`: dropping the
/// socket sends the same FIN (and a reset if unread data remains, shut down or
/// not), one system call fewer per connection.
async fn close_client<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    rt: &R,
    client: &mut S,
    pending: &[u8],
    linger: bool,
    tls: bool,
) {
    let _ = crate::runtime::timeout(rt, LINGER, async {
        if client.write_all(pending).await.is_err() || client.flush().await.is_err() {
            return;
        }
        if !tls && !linger {
            return;
        }
        // On TLS this sends close_notify, so a client reading to the end can
        // tell the end from a cut.
        if client.close().await.is_err() || !linger {
            return;
        }
        // Drained through the thread's scratch buffer: a buffer here would be part
        // of every connection's future, idle or not.
        let mut drained = 0usize;
        while drained < 1 << 20 {
            let read = poll_fn(|cx| {
                SCRATCH.with_borrow_mut(|buf| Pin::new(&mut *client).poll_read(cx, buf))
            })
            .await;
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
