//! A small pipelining Redis client over the driver's runtime streams (TCP or
//! TLS): what the shared-state store sends its scripts and cache commands with.
//!
//! RESP2 frames are encoded and decoded by the `redis-protocol` crate; this
//! module only moves them. It is written on the driver's [`Runtime`] (not on a
//! Redis crate's own tokio or smol support) so it runs the same on tokio, smol
//! and the turmoil simulation.
//!
//! One connection carries every call, pipelined: calls are written in order as
//! they come and answered in order (Redis answers in order). A call is bounded
//! by the store's timeout, whatever happens to the connection; a call that
//! times out leaves the connection in use (its answer is dropped when it
//! comes). The connection is opened on first use and again after it fails:
//! calls made while it is being opened wait for it within their own timeout;
//! calls made after a failed attempt fail at once until a short back-off has
//! passed, so a Redis that is down costs requests no time.
//!
//! Invariants:
//! - replies are matched to calls strictly in order: the in-flight queue holds
//!   exactly the calls written and not yet answered, each with the number of
//!   replies it expects;
//! - at most one connection attempt runs at a time (`State::Connecting`), and a
//!   connection's IO task only changes the state while it is still the current
//!   generation.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::Stream as _;
use portcullis_core::config::store::RedisUrl;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;

use crate::runtime::{timeout_at, Runtime};
use crate::upstream::stream::PollStream;
use crate::upstream::{Connector, UpstreamStream};

/// Calls queued for the connection before new ones are refused.
const QUEUE: usize = 8192;
/// Wait after a failed connection attempt before the next.
const BACKOFF: Duration = Duration::from_millis(500);
/// Calls in a row without an answer after which the connection is taken for
/// dead (a peer that vanished, a middlebox that forgot the connection): it is
/// closed and the next call opens a new one.
const DEAD_AFTER_TIMEOUTS: u32 = 3;
/// Largest reply accepted (a cached response is at most the entry limit).
const MAX_REPLY_BYTES: usize = 600 * 1024 * 1024;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The answer did not come within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No connection (refused, closed, reconnecting after a failure).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Server(String),
    /// The answer was not what the command returns.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl CallError {
    /// The metric label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::Unavailable(_) => "unavailable",
            CallError::Server(_) | CallError::Protocol(_) => "error",
        }
    }
}

/// Commands to send together, and how many replies they make.
#[derive(Debug, Default)]
pub struct Commands {
    buf: BytesMut,
    count: usize,
}

impl Commands {
    /// No commands yet.
    pub fn new() -> Self {
        Commands::default()
    }

    /// Appends one command of `args` (the name first).
    pub fn push<I, A>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        let frame = BytesFrame::Array(
            args.into_iter()
                .map(|a| BytesFrame::BulkString(a.into()))
                .collect(),
        );
        // Encoding an array of bulk strings into a growable buffer cannot fail.
        let _ = extend_encode(&mut self.buf, &frame, false);
        self.count += 1;
        self
    }

    /// How many commands there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A call on its way: its commands and where the replies go.
struct Job {
    bytes: BytesMut,
    replies: usize,
    answer: async_channel::Sender<Result<Vec<BytesFrame>, CallError>>,
}

/// A call written and waiting for its replies.
struct InFlight {
    replies: usize,
    got: Vec<BytesFrame>,
    answer: async_channel::Sender<Result<Vec<BytesFrame>, CallError>>,
}

enum State {
    /// No connection; the next attempt may start at `retry_at`.
    Down { retry_at: Instant, error: String },
    /// An attempt runs; its end closes `done`.
    Connecting { done: async_channel::Receiver<()> },
    /// Connected: calls go to the connection's IO task.
    Up { jobs: async_channel::Sender<Job> },
}

struct Inner<R: Runtime> {
    rt: R,
    connector: Connector<R>,
    url: RedisUrl,
    name: String,
    timeout: Duration,
    state: Mutex<(State, u64)>,
    /// Calls in a row that timed out on the open connection.
    timeouts: std::sync::atomic::AtomicU32,
}

/// A Redis client: one pipelined connection, opened on demand.
pub struct Client<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> Client<R> {
    /// A client of the server at `url`; `name` is its `CLIENT SETNAME`, every
    /// call is bounded by `timeout`. Nothing is opened until the first call
    /// (or [`connect`](Self::connect)).
    pub fn new(
        rt: R,
        connector: Connector<R>,
        url: RedisUrl,
        name: String,
        timeout: Duration,
    ) -> Self {
        let now = rt.now();
        Client {
            inner: Arc::new(Inner {
                rt,
                connector,
                url,
                name,
                timeout,
                state: Mutex::new((
                    State::Down {
                        retry_at: now,
                        error: "not connected yet".into(),
                    },
                    0,
                )),
                timeouts: Default::default(),
            }),
        }
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> &R {
        &self.inner.rt
    }

    /// The bound on one call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Starts opening the connection if none is open or being opened.
    pub fn connect(&self) {
        let _ = self.sender(self.inner.rt.now());
    }

    /// Sends `commands` and returns their replies, in order, within the
    /// timeout. Error replies are returned as frames (callers look at each).
    pub async fn call(&self, commands: Commands) -> Result<Vec<BytesFrame>, CallError> {
        let started = self.inner.rt.now();
        let deadline = started + self.inner.timeout;
        let jobs = loop {
            match self.sender(self.inner.rt.now()) {
                Ok(jobs) => break jobs,
                Err(Wait::Fail(e)) => return Err(e),
                Err(Wait::Connecting(done)) => {
                    // Wait for the attempt to end (the channel closes), then look again.
                    if timeout_at(&self.inner.rt, deadline, done.recv())
                        .await
                        .is_none()
                    {
                        return Err(CallError::Timeout(self.inner.timeout));
                    }
                }
            }
        };
        let (answer, replies) = async_channel::bounded(1);
        let job = Job {
            bytes: commands.buf,
            replies: commands.count,
            answer,
        };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(_)) => {
                return Err(CallError::Unavailable("too many calls queued".into()));
            }
            Err(async_channel::TrySendError::Closed(_)) => {
                return Err(CallError::Unavailable("connection closed".into()));
            }
        }
        match timeout_at(&self.inner.rt, deadline, replies.recv()).await {
            None => {
                self.timed_out(&jobs);
                Err(CallError::Timeout(self.inner.timeout))
            }
            Some(Err(_)) => Err(CallError::Unavailable("connection closed".into())),
            Some(Ok(result)) => {
                self.inner.timeouts.store(0, Ordering::Relaxed);
                result
            }
        }
    }

    /// A call on the connection of `jobs` got no answer in time; after
    /// [`DEAD_AFTER_TIMEOUTS`] in a row the connection is closed (its IO task
    /// ends, failing what still waits) and the next call reconnects.
    fn timed_out(&self, jobs: &async_channel::Sender<Job>) {
        let n = self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if n < DEAD_AFTER_TIMEOUTS {
            return;
        }
        let mut guard = lock(&self.inner.state);
        if let State::Up { jobs: current } = &guard.0 {
            if current.same_channel(jobs) {
                current.close();
                guard.0 = State::Down {
                    retry_at: self.inner.rt.now(),
                    error: format!("no answer to {n} calls in a row"),
                };
                self.inner.timeouts.store(0, Ordering::Relaxed);
                tracing::warn!(
                    target = %self.inner.url.display_redacted(),
                    "shared-state store: no answers on the connection, reconnecting"
                );
            }
        }
    }

    /// The job queue of the open connection, or why there is none.
    fn sender(&self, now: Instant) -> Result<async_channel::Sender<Job>, Wait> {
        let mut guard = lock(&self.inner.state);
        let (state, generation) = &mut *guard;
        match state {
            State::Up { jobs, .. } if !jobs.is_closed() => Ok(jobs.clone()),
            State::Up { .. } => {
                *state = State::Down {
                    retry_at: now,
                    error: "connection closed".into(),
                };
                drop(guard);
                self.sender(now)
            }
            State::Connecting { done } => Err(Wait::Connecting(done.clone())),
            State::Down { retry_at, error } if now < *retry_at => {
                Err(Wait::Fail(CallError::Unavailable(error.clone())))
            }
            State::Down { .. } => {
                *generation += 1;
                let (done_tx, done) = async_channel::bounded::<()>(1);
                *state = State::Connecting { done: done.clone() };
                let this = self.clone();
                let gen = *generation;
                self.inner.rt.spawn(async move {
                    this.open(gen).await;
                    drop(done_tx);
                });
                Err(Wait::Connecting(done))
            }
        }
    }

    /// One connection attempt (generation `gen`); on success its IO task runs.
    async fn open(&self, gen: u64) {
        let inner = &self.inner;
        let attempt = async {
            let mut stream = inner
                .connector
                .open(&inner.url.host, inner.url.port, inner.url.tls)
                .await
                .map_err(|e| format!("connect to {}:{}: {e}", inner.url.host, inner.url.port))?;
            handshake(&mut stream, &inner.url, &inner.name).await?;
            Ok::<_, String>(stream)
        };
        // The attempt is bounded too: a black-holed address must not keep
        // every call waiting for the operating system's connect timeout.
        let limit = inner.timeout.max(Duration::from_secs(2));
        let result = match crate::runtime::timeout(&inner.rt, limit, attempt).await {
            Some(r) => r,
            None => Err(format!("connect timed out after {limit:?}")),
        };
        let mut guard = lock(&inner.state);
        if guard.1 != gen {
            return;
        }
        match result {
            Ok(stream) => {
                let (jobs, queue) = async_channel::bounded(QUEUE);
                guard.0 = State::Up { jobs };
                drop(guard);
                tracing::info!(target = %inner.url.display_redacted(), "shared-state store connected");
                // The task holds the client weakly: when the store is dropped
                // the queue closes and the connection ends.
                let weak = Arc::downgrade(&self.inner);
                inner.rt.spawn(async move {
                    let error = Pump::new(stream, queue).await;
                    if let Some(inner) = weak.upgrade() {
                        Client { inner }.connection_lost(gen, error);
                    }
                });
            }
            Err(error) => {
                tracing::warn!(target = %inner.url.display_redacted(), %error, "shared-state store: cannot connect");
                guard.0 = State::Down {
                    retry_at: inner.rt.now() + BACKOFF,
                    error,
                };
            }
        }
    }

    fn connection_lost(&self, gen: u64, error: String) {
        let mut guard = lock(&self.inner.state);
        if guard.1 == gen {
            tracing::warn!(target = %self.inner.url.display_redacted(), %error, "shared-state store connection lost");
            // The next call reconnects at once: a connection that worked and
            // broke (a Redis restart) is worth one immediate try.
            guard.0 = State::Down {
                retry_at: self.inner.rt.now(),
                error,
            };
        }
    }
}

enum Wait {
    Fail(CallError),
    Connecting(async_channel::Receiver<()>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Authenticates, selects the database and names the connection.
async fn handshake<S: PollStream>(
    stream: &mut S,
    url: &RedisUrl,
    name: &str,
) -> Result<(), String> {
    let mut cmds = Commands::new();
    match (&url.username, &url.password) {
        (Some(user), Some(pass)) => {
            cmds.push(["AUTH".to_owned(), user.clone(), pass.clone()]);
        }
        (None, Some(pass)) => {
            cmds.push(["AUTH".to_owned(), pass.clone()]);
        }
        _ => {}
    }
    if url.db != 0 {
        cmds.push(["SELECT".to_owned(), url.db.to_string()]);
    }
    cmds.push(["CLIENT".to_owned(), "SETNAME".to_owned(), name.to_owned()]);
    let replies = cmds.count;
    write_all(stream, &cmds.buf)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = BytesMut::with_capacity(512);
    for _ in 0..replies {
        let frame = read_frame(stream, &mut buf).await?;
        if let BytesFrame::Error(e) = frame {
            return Err(format!("{e}"));
        }
    }
    Ok(())
}

async fn write_all<S: PollStream>(stream: &mut S, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = std::future::poll_fn(|cx| stream.poll_write(cx, data)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    std::future::poll_fn(|cx| stream.poll_flush(cx)).await
}

async fn read_frame<S: PollStream>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<BytesFrame, String> {
    loop {
        if let Some((frame, _, _)) = decode_bytes_mut(buf).map_err(|e| format!("{e:?}"))? {
            return Ok(frame);
        }
        let mut chunk = [0u8; 4096];
        let n = std::future::poll_fn(|cx| stream.poll_read(cx, &mut chunk))
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed by the server".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The IO task of one connection: writes queued calls, reads their replies,
/// and ends with the reason the connection ended.
struct Pump<S> {
    stream: UpstreamStream<S>,
    queue: Pin<Box<async_channel::Receiver<Job>>>,
    out: BytesMut,
    written: usize,
    input: BytesMut,
    in_flight: VecDeque<InFlight>,
    queue_open: bool,
}

impl<S: crate::runtime::Stream> Pump<S> {
    fn new(stream: UpstreamStream<S>, queue: async_channel::Receiver<Job>) -> Self {
        Pump {
            stream,
            queue: Box::pin(queue),
            out: BytesMut::with_capacity(16 * 1024),
            written: 0,
            input: BytesMut::with_capacity(16 * 1024),
            in_flight: VecDeque::new(),
            queue_open: true,
        }
    }

    /// Fails every call still waiting.
    fn fail_all(&mut self, why: &str) {
        for f in self.in_flight.drain(..) {
            let _ = f
                .answer
                .try_send(Err(CallError::Unavailable(why.to_owned())));
        }
        self.queue.close();
        while let Ok(job) = self.queue.try_recv() {
            let _ = job
                .answer
                .try_send(Err(CallError::Unavailable(why.to_owned())));
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        // Take every queued call: they go out in one write.
        while self.queue_open {
            match self.queue.as_mut().poll_next(cx) {
                Poll::Ready(Some(job)) => {
                    self.out.extend_from_slice(&job.bytes);
                    self.in_flight.push_back(InFlight {
                        replies: job.replies,
                        got: Vec::with_capacity(job.replies),
                        answer: job.answer,
                    });
                }
                Poll::Ready(None) => self.queue_open = false,
                Poll::Pending => break,
            }
        }
        if !self.queue_open {
            // The client closed the queue (it took the connection for dead, or
            // it is gone): end now, failing what still waits.
            return Poll::Ready("closed by the client".into());
        }
        // Write what is pending.
        while self.written < self.out.len() {
            match self.stream.poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready("write returned zero".into()),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(format!("write: {e}")),
                Poll::Pending => break,
            }
        }
        if self.written == self.out.len() && !self.out.is_empty() {
            match self.stream.poll_flush(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(format!("flush: {e}")),
                Poll::Ready(Ok(())) => {
                    self.out.clear();
                    self.written = 0;
                }
                Poll::Pending => {}
            }
        }
        // Read replies.
        loop {
            loop {
                match decode_bytes_mut(&mut self.input) {
                    Ok(Some((frame, _, _))) => {
                        let Some(front) = self.in_flight.front_mut() else {
                            return Poll::Ready("a reply nobody asked for".into());
                        };
                        front.got.push(frame);
                        if front.got.len() == front.replies {
                            if let Some(done) = self.in_flight.pop_front() {
                                let _ = done.answer.try_send(Ok(done.got));
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Poll::Ready(format!("bad reply: {e:?}")),
                }
            }
            if self.input.len() > MAX_REPLY_BYTES {
                return Poll::Ready("reply too large".into());
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => return Poll::Ready("closed by the server".into()),
                Poll::Ready(Ok(n)) => self.input.extend_from_slice(&chunk[..n]),
                Poll::Ready(Err(e)) => return Poll::Ready(format!("read: {e}")),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: crate::runtime::Stream> Future for Pump<S> {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        let this = self.get_mut();
        match this.step(cx) {
            Poll::Ready(why) => {
                this.fail_all(&why);
                Poll::Ready(why)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The integer of a reply, or a protocol error naming `what`.
pub fn int(frame: &BytesFrame, what: &str) -> Result<i64, CallError> {
    match frame {
        BytesFrame::Integer(i) => Ok(*i),
        BytesFrame::Error(e) => Err(CallError::Server(e.to_string())),
        other => Err(CallError::Protocol(format!("{what}: {other:?}"))),
    }
}

/// An error reply as a `CallError`, anything else as itself.
pub fn ok(frame: BytesFrame) -> Result<BytesFrame, CallError> {
    match frame {
        BytesFrame::Error(e) => Err(CallError::Server(e.to_string())),
        other => Ok(other),
    }
}
