//! Performs the HTTP calls the gateway makes itself (`send-request`,
//! `send-one-way-request`, OpenID metadata): connect (or reuse a pooled
//! connection), TLS, then shuttle bytes through the core's `CalloutExchange`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::callout::{CalloutFailure, CalloutLimits, CalloutRequest};
use portcullis_core::config::ServiceUrl;
use portcullis_core::policy::context::Response;
use portcullis_driver::callout::client::{self, callout_pool_limits, CalloutClient, CalloutConns};
use tokio_util::sync::CancellationToken;

use crate::now;
use crate::upstream::{Connector, TlsSetupError, UpstreamConn, UpstreamStream, Upstreams};

/// Performs callouts; cheap to clone (every clone shares the TLS configuration and
/// the pool of idle connections).
#[derive(Clone)]
pub struct Callouts {
    /// The gateway\'s `send-one-way-request` calls in flight.
    pub(crate) one_way: portcullis_driver::callout::OneWayCalls,
    inner: Arc<Upstreams>,
    limits: CalloutLimits,
}

impl std::fmt::Debug for Callouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callouts")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Callouts {
    /// Callouts trusting the Mozilla root CAs and, if given, the PEM certificates in
    /// `extra_ca`, with the default response limits.
    pub fn new(extra_ca: Option<&Path>) -> Result<Callouts, TlsSetupError> {
        Ok(Callouts::with_connector(Connector::new(extra_ca)?))
    }

    /// Callouts sharing a connector (and so its TLS configuration) with the proxy,
    /// with a pool of their own.
    pub(crate) fn with_connector(connector: Connector) -> Callouts {
        Callouts {
            inner: Arc::new(Upstreams::new(callout_pool_limits(), connector)),
            limits: CalloutLimits::default(),
            one_way: Default::default(),
        }
    }

    /// The same callouts with other response limits (sharing the pool).
    pub fn with_limits(mut self, limits: CalloutLimits) -> Callouts {
        self.limits = limits;
        self
    }

    /// Closes idle connections once they have been idle too long, until `stop`.
    /// Optional: idle connections past their time are also closed by `perform`.
    pub async fn reap(&self, stop: CancellationToken) {
        self.inner.clone().reap(stop).await;
    }

    /// Makes the call: name resolution, connect (or a pooled connection), TLS,
    /// request, response, all within `req.timeout` (tokio's clock); see
    /// [`client::perform`].
    pub async fn perform(&self, req: CalloutRequest) -> Result<Response, CalloutFailure> {
        client::perform(&*self.inner, self.limits, req).await
    }
}

impl CalloutClient for Callouts {
    fn perform(
        &self,
        request: CalloutRequest,
    ) -> impl std::future::Future<Output = Result<Response, CalloutFailure>> + Send {
        Callouts::perform(self, request)
    }
}

impl CalloutConns for Upstreams {
    type Stream = UpstreamStream;

    fn now(&self) -> Instant {
        now()
    }

    fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn> {
        Upstreams::checkout(self, key, now)
    }

    fn checkin(&self, conn: UpstreamConn, now: Instant) {
        Upstreams::checkin(self, conn, now);
    }

    fn close_expired(&self, now: Instant) {
        Upstreams::close_expired(self, now);
    }

    fn connect(
        &self,
        service: &ServiceUrl,
    ) -> impl std::future::Future<Output = std::io::Result<UpstreamConn>> + Send {
        Upstreams::connect(self, service)
    }

    async fn within<F: std::future::Future + Send>(
        &self,
        limit: Duration,
        fut: F,
    ) -> Option<F::Output> {
        tokio::time::timeout(limit, fut).await.ok()
    }
}
