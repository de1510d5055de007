//! The calls the gateway makes itself (`send-request`, `send-one-way-request`,
//! OpenID metadata, the management plane's API): the exchange loop over pooled
//! connections, and the per-gateway cap on one-way calls.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::callout::{CalloutFailure, CalloutLimits, CalloutRequest};
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::UpstreamTls;
use portcullis_core::policy::context::Response;

use crate::runtime::Runtime;
use crate::stop::Stop;
use crate::upstream::{Connector, TlsSetupError, UpstreamConn, UpstreamStream, Upstreams};

pub mod client;

use client::{callout_pool_limits, CalloutClient, CalloutConns};

/// Performs callouts on runtime `R`; cheap to clone (every clone shares the TLS
/// configuration and the pool of idle connections).
pub struct Callouts<R: Runtime> {
    inner: Arc<Upstreams<R>>,
    limits: CalloutLimits,
    /// Where Entra ID's OpenID configurations are fetched from instead of
    /// `https://login.microsoftonline.com` (`--entra-authority`).
    entra_authority: Option<Arc<str>>,
}

impl<R: Runtime> Clone for Callouts<R> {
    fn clone(&self) -> Self {
        Callouts {
            inner: self.inner.clone(),
            limits: self.limits,
            entra_authority: self.entra_authority.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Callouts<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callouts")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Callouts<R> {
    /// Callouts on the default runtime trusting the Mozilla root CAs and, if
    /// given, the PEM certificates in `extra_ca`, with the default response
    /// limits.
    pub fn new(extra_ca: Option<&Path>) -> Result<Callouts<R>, TlsSetupError> {
        Ok(Callouts::with_connector(Connector::new(
            R::default(),
            extra_ca,
        )?))
    }
}

impl<R: Runtime> Callouts<R> {
    /// Callouts sharing a connector (and so its TLS configuration) with the proxy,
    /// with a pool of their own.
    pub fn with_connector(connector: Connector<R>) -> Callouts<R> {
        Callouts {
            inner: Arc::new(Upstreams::new(callout_pool_limits(), connector)),
            limits: CalloutLimits::default(),
            entra_authority: None,
        }
    }

    /// The same callouts fetching Entra ID's OpenID configurations
    /// (`validate-azure-ad-token`) from `authority` instead of
    /// `https://login.microsoftonline.com` (`None`: from there).
    pub fn with_entra_authority(mut self, authority: Option<&str>) -> Callouts<R> {
        self.entra_authority = authority
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && *a != portcullis_core::policy::azure_ad::ENTRA_AUTHORITY)
            .map(Arc::from);
        self
    }

    /// The same callouts with other response limits (sharing the pool).
    pub fn with_limits(mut self, limits: CalloutLimits) -> Callouts<R> {
        self.limits = limits;
        self
    }

    /// The runtime the calls are made on.
    pub fn runtime(&self) -> &R {
        self.inner.runtime()
    }

    /// Closes idle connections once they have been idle too long, until `stop`.
    /// Optional: idle connections past their time are also closed by `perform`.
    pub async fn reap(&self, stop: Stop) {
        self.inner.clone().reap(stop).await;
    }

    /// Makes the call: name resolution, connect (or a pooled connection), TLS,
    /// request, response, all within `req.timeout` (the runtime's clock); see
    /// [`client::perform`].
    pub async fn perform(&self, req: CalloutRequest) -> Result<Response, CalloutFailure> {
        client::perform(&*self.inner, self.limits, req, None).await
    }

    /// [`Callouts::perform`] with TLS as `tls` says (`None`: the defaults).
    pub async fn perform_with_tls(
        &self,
        req: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
    ) -> Result<Response, CalloutFailure> {
        client::perform(&*self.inner, self.limits, req, tls.as_deref()).await
    }
}

impl<R: Runtime> CalloutClient for Callouts<R> {
    fn perform(
        &self,
        request: CalloutRequest,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send {
        Callouts::perform(self, request)
    }

    fn perform_with_tls(
        &self,
        request: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send {
        Callouts::perform_with_tls(self, request, tls)
    }

    fn entra_authority(&self) -> Option<&str> {
        self.entra_authority.as_deref()
    }
}

impl<R: Runtime> CalloutConns for Upstreams<R> {
    type Stream = UpstreamStream<R::Stream>;

    fn now(&self) -> Instant {
        self.runtime().now()
    }

    fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn<R>> {
        Upstreams::checkout(self, key, now)
    }

    fn checkin(&self, conn: UpstreamConn<R>, now: Instant) {
        Upstreams::checkin(self, conn, now);
    }

    fn close_expired(&self, now: Instant) {
        Upstreams::close_expired(self, now);
    }

    fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&UpstreamTls>,
        key: Arc<str>,
    ) -> impl Future<Output = std::io::Result<UpstreamConn<R>>> + Send {
        Upstreams::connect(self, service, tls, key)
    }

    async fn within<F: Future + Send>(&self, limit: Duration, fut: F) -> Option<F::Output> {
        crate::runtime::timeout(self.runtime(), limit, fut).await
    }
}

/// Most `send-one-way-request` calls in flight at once, per gateway.
pub const MAX_ONE_WAY_IN_FLIGHT: usize = 1024;

/// The `send-one-way-request` calls one gateway has in flight: cheap to clone,
/// every clone counts the same calls.
#[derive(Debug, Clone, Default)]
pub struct OneWayCalls(Arc<AtomicUsize>);

impl OneWayCalls {
    /// A place for one more `send-one-way-request`, or `None` over
    /// [`MAX_ONE_WAY_IN_FLIGHT`]: nobody waits for these, so a flood of them must
    /// not pile up tasks without bound; over the cap they are dropped.
    pub fn try_acquire(&self) -> Option<OneWaySlot> {
        let in_flight = self.0.fetch_add(1, Ordering::Relaxed);
        if in_flight >= MAX_ONE_WAY_IN_FLIGHT {
            self.0.fetch_sub(1, Ordering::Relaxed);
            None
        } else {
            Some(OneWaySlot(self.0.clone()))
        }
    }
}

/// One counted place among the one-way calls in flight, given back on drop.
#[derive(Debug)]
pub struct OneWaySlot(Arc<AtomicUsize>);

impl Drop for OneWaySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
