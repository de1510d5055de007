//! Performs the HTTP calls the gateway makes itself (`send-request`,
//! `send-one-way-request`, OpenID metadata): connect (or reuse a pooled
//! connection), TLS, then shuttle bytes through the core's `CalloutExchange`.

use std::future::poll_fn;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use portcullis_core::callout::{
    CalloutError, CalloutExchange, CalloutFailure, CalloutLimits, CalloutRequest, CalloutTarget,
    Completed,
};
use portcullis_core::policy::context::Response;
use portcullis_core::pool::PoolLimits;
use tokio_util::sync::CancellationToken;

use crate::now;
use crate::upstream::{Connector, TlsSetupError, UpstreamConn, Upstreams};

/// Size of the read buffer of one call.
const READ_BUFFER: usize = 16 * 1024;

/// Pool limits for callout connections: few per host, since callouts are rare
/// next to proxied traffic.
fn default_pool() -> PoolLimits {
    PoolLimits {
        max_idle_per_backend: 8,
        max_idle_total: 256,
        idle_timeout: Duration::from_secs(30),
    }
}

/// Performs callouts; cheap to clone (every clone shares the TLS configuration and
/// the pool of idle connections).
#[derive(Clone)]
pub struct Callouts {
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
            inner: Arc::new(Upstreams::new(default_pool(), connector)),
            limits: CalloutLimits::default(),
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
    /// request, response, all within `req.timeout` (tokio's clock). A pooled
    /// connection that turns out closed before any response byte is replaced by a
    /// new one for idempotent methods.
    pub async fn perform(&self, req: CalloutRequest) -> Result<Response, CalloutFailure> {
        let (target, _) = req
            .prepare(self.limits)
            .map_err(CalloutFailure::InvalidRequest)?;
        let timeout = req.timeout;
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(timeout, Box::pin(self.run(&req, &target))).await;
        let result = outcome.unwrap_or(Err(CalloutFailure::Timeout(timeout)));
        match &result {
            Ok(response) => tracing::debug!(
                method = %req.method,
                target = %target.pool_key(),
                status = response.status,
                elapsed = ?started.elapsed(),
                "callout done"
            ),
            Err(err) => tracing::debug!(
                method = %req.method,
                target = %target.pool_key(),
                kind = err.kind().as_str(),
                error = %err,
                elapsed = ?started.elapsed(),
                "callout failed"
            ),
        }
        result
    }

    async fn run(
        &self,
        req: &CalloutRequest,
        target: &CalloutTarget,
    ) -> Result<Response, CalloutFailure> {
        let key = target.pool_key();
        loop {
            let (mut conn, reused) = match self.inner.checkout(key, now()) {
                Some(conn) => (conn, true),
                None => {
                    let conn = self
                        .inner
                        .connect(&target.service)
                        .await
                        .map_err(|source| CalloutFailure::Connect {
                            target: key.clone(),
                            source,
                        })?;
                    (conn, false)
                }
            };
            let mut exchange = CalloutExchange::new(req, target, self.limits)
                .map_err(CalloutFailure::InvalidRequest)?;
            match exchange_on(&mut conn, &mut exchange).await {
                Ok(Completed { response, reusable }) => {
                    if reusable {
                        let now = now();
                        self.inner.close_expired(now);
                        self.inner.checkin(conn, now);
                    }
                    return Ok(response);
                }
                Err(err) if reused && exchange.may_retry_on_new_connection() => {
                    tracing::debug!(target = %key, error = %err, "pooled connection failed; retrying");
                }
                Err(err) => {
                    return Err(match err {
                        Broken::Io(source) => CalloutFailure::Io {
                            target: key.clone(),
                            source,
                        },
                        Broken::Response(source) => CalloutFailure::Response {
                            target: key.clone(),
                            source,
                        },
                    })
                }
            }
        }
    }
}

/// How an exchange on an open connection failed.
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error(transparent)]
    Io(std::io::Error),
    #[error(transparent)]
    Response(CalloutError),
}

/// Writes the request and reads the response at the same time, so a response that
/// comes early (an error before the whole body was sent) is still read.
async fn exchange_on(
    conn: &mut UpstreamConn,
    exchange: &mut CalloutExchange,
) -> Result<Completed, Broken> {
    let mut buf = vec![0u8; READ_BUFFER];
    // After a write error only reading goes on: the server may have answered
    // before it stopped reading, and reading shows how the connection ended.
    let mut write_failed = false;
    poll_fn(|cx| loop {
        let mut progressed = false;
        while !write_failed && !exchange.pending().is_empty() {
            match conn.stream.poll_write(cx, exchange.pending()) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    exchange.written(n);
                    progressed = true;
                }
                Poll::Ready(_) => write_failed = true,
                Poll::Pending => break,
            }
        }
        if !write_failed {
            if let Poll::Ready(Err(_)) = conn.stream.poll_flush(cx) {
                write_failed = true;
            }
        }
        match conn.stream.poll_read(cx, &mut buf) {
            Poll::Ready(read) => {
                let n = match read {
                    Ok(n) => n,
                    // A TLS peer that closed without close_notify: the end of the
                    // stream as far as HTTP framing goes, which decides whether the
                    // response was complete.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => return Poll::Ready(Err(Broken::Io(e))),
                };
                match exchange.handle_data(&buf[..n]) {
                    Ok(Some(done)) => return Poll::Ready(Ok(done)),
                    Ok(None) if n == 0 => {
                        return Poll::Ready(Err(Broken::Response(CalloutError::NoResponse)))
                    }
                    Ok(None) => progressed = true,
                    Err(e) => return Poll::Ready(Err(Broken::Response(e))),
                }
            }
            Poll::Pending => {}
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await
}
