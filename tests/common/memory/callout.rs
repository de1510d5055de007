//! Call-outs in memory: `send-request`, `send-one-way-request` and the OpenID
//! key set fetches made by the driver's own call-out client
//! (`portcullis_driver::callout::client::perform`, core's `CalloutExchange`)
//! over `MemStream`s to scripted `MemBackend`s. The script is the backend's
//! handler; what was sent is its `requests()` and `raw_bytes()`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use portcullis_core::callout::{CalloutFailure, CalloutLimits, CalloutRequest};
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::{Scheme, UpstreamTls};
use portcullis_core::policy::context::Response;
use portcullis_driver::callout::client::{perform, CalloutClient, CalloutConns};
use portcullis_driver::upstream::pool::PooledConn;

use super::backend::MemStream;

/// The harness's clock: a start and how far the test moved it. Shared (and
/// `Sync`, as call-outs need) by the gateway and its call-out client.
#[derive(Debug)]
pub struct MemClock {
    start: Instant,
    nanos: AtomicU64,
}

impl MemClock {
    pub(super) fn new(start: Instant) -> MemClock {
        MemClock {
            start,
            nanos: AtomicU64::new(0),
        }
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::Relaxed);
    }

    /// Moves the clock to `at`, if that is later.
    pub fn advance_to(&self, at: Instant) {
        self.advance(at.saturating_duration_since(self.now()));
    }
}

/// Polls `fut` once; in memory everything it waits for is already there, so
/// `None` means it waits for something nothing will ever give.
pub(super) fn poll_now<F: Future>(fut: F) -> Option<F::Output> {
    let fut = pin!(fut);
    match fut.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Idle call-out connections by pool key.
type Pool = Mutex<HashMap<Arc<str>, Vec<PooledConn<MemStream>>>>;

/// The driver's call-out client over memory. Cheap to clone: clones share the
/// pool and the clock.
#[derive(Clone)]
pub struct MemCallouts {
    clock: Arc<MemClock>,
    pool: Arc<Pool>,
    limits: CalloutLimits,
    /// A call that times out moves the clock by its timeout (the client
    /// waited); a one-way call waits in a task nobody waits for, so it does not.
    waits: bool,
    /// As `Callouts::with_entra_authority`.
    entra_authority: Option<Arc<str>>,
}

impl MemCallouts {
    pub(super) fn new(clock: Arc<MemClock>) -> MemCallouts {
        MemCallouts {
            clock,
            pool: Arc::default(),
            limits: CalloutLimits::default(),
            waits: true,
            entra_authority: None,
        }
    }

    /// The same client fetching Entra ID's configurations from `authority`
    /// (as `Callouts::with_entra_authority`).
    pub(super) fn with_entra_authority(mut self, authority: Option<&str>) -> MemCallouts {
        self.entra_authority = authority.map(|a| Arc::from(a.trim_end_matches('/')));
        self
    }

    /// The same client with other response limits (as `Callouts::with_limits`).
    pub(super) fn with_limits(mut self, limits: CalloutLimits) -> MemCallouts {
        self.limits = limits;
        self
    }

    /// The same client for calls nobody waits for.
    pub(super) fn detached(mut self) -> MemCallouts {
        self.waits = false;
        self
    }
}

impl CalloutClient for MemCallouts {
    fn perform(
        &self,
        request: CalloutRequest,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send {
        self.perform_with_tls(request, None)
    }

    fn perform_with_tls(
        &self,
        request: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send {
        let result = poll_now(perform(self, self.limits, request, tls.as_deref()))
            .unwrap_or_else(|| panic!("an in-memory call-out waited on nothing"));
        std::future::ready(result)
    }

    fn entra_authority(&self) -> Option<&str> {
        self.entra_authority.as_deref()
    }
}

impl CalloutConns for MemCallouts {
    type Stream = MemStream;

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn checkout(&self, key: &Arc<str>, _now: Instant) -> Option<PooledConn<MemStream>> {
        let mut pool = self.pool.lock().unwrap();
        let idle = pool.get_mut(key)?;
        // As the driver's pool: a connection the server closed is dropped.
        while let Some(conn) = idle.pop() {
            if !conn.stream.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, conn: PooledConn<MemStream>, _now: Instant) {
        let mut pool = self.pool.lock().unwrap();
        pool.entry(conn.key.clone()).or_default().push(conn);
    }

    fn close_expired(&self, _now: Instant) {}

    fn connect(
        &self,
        service: &ServiceUrl,
        _tls: Option<&UpstreamTls>,
        key: Arc<str>,
    ) -> impl Future<Output = std::io::Result<PooledConn<MemStream>>> + Send {
        // TLS settings only matter to https targets, which live in the socket suites.
        let opened = MemStream::connect(
            key.clone(),
            &service.host,
            service.port,
            service.scheme == Scheme::Https,
        )
        .map(|stream| PooledConn { key, stream });
        std::future::ready(opened)
    }

    async fn within<F: Future + Send>(&self, limit: Duration, fut: F) -> Option<F::Output> {
        // Whatever the call waits for is there or never comes: a scripted
        // target that hangs or holds its answer makes the call time out.
        let out = poll_now(fut);
        if out.is_none() && self.waits {
            self.clock.advance(limit);
        }
        out
    }
}
