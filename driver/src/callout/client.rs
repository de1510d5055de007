//! Making a callout over the adapter's connections: the loop both adapters run
//! around a [`CalloutExchange`] (pooled connection or a new one, retry on a stale
//! one, the exchange itself, logging), generic over what the adapter provides.
//!
//! Nothing here opens a socket, reads a clock or sleeps: the adapter hands in its
//! connections, its clock and its timeout through [`CalloutConns`].

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use portcullis_core::callout::{
    CalloutError, CalloutExchange, CalloutFailure, CalloutLimits, CalloutRequest, CalloutTarget,
    Completed,
};
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::UpstreamTls;
use portcullis_core::machine::Machine;
use portcullis_core::policy::context::Response;
use portcullis_core::pool::PoolLimits;

use crate::upstream::pool::PooledConn;
use crate::upstream::stream::PollStream;

/// Size of the read buffer of one call.
const READ_BUFFER: usize = 16 * 1024;

/// Pool limits for callout connections: few per host, since callouts are rare
/// next to proxied traffic.
pub fn callout_pool_limits() -> PoolLimits {
    PoolLimits {
        max_idle_per_backend: 8,
        max_idle_total: 256,
        idle_timeout: Duration::from_secs(30),
    }
}

/// Something that makes callouts (an adapter's `Callouts`).
pub trait CalloutClient {
    /// Makes the call and reads the response.
    fn perform(
        &self,
        request: CalloutRequest,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send;

    /// Makes the call with TLS as `tls` says (`None`: the defaults) for an
    /// `https://` URL (`send-request` with `authentication-certificate`).
    fn perform_with_tls(
        &self,
        request: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
    ) -> impl Future<Output = Result<Response, CalloutFailure>> + Send;

    /// Where Entra ID's OpenID configurations are fetched from instead of
    /// `https://login.microsoftonline.com` (`None`: from there).
    fn entra_authority(&self) -> Option<&str> {
        None
    }
}

/// What an adapter provides for callouts: its connections, clock and timer.
pub trait CalloutConns: Sync {
    /// An open connection (TCP or TLS) on the adapter's runtime.
    type Stream: PollStream + Send;

    /// The current time, on the adapter's clock.
    fn now(&self) -> Instant;

    /// An idle connection to `key` that is still open, if any.
    fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<PooledConn<Self::Stream>>;

    /// Gives a clean connection back for reuse.
    fn checkin(&self, conn: PooledConn<Self::Stream>, now: Instant);

    /// Closes connections idle for too long.
    fn close_expired(&self, now: Instant);

    /// Opens a new connection (name resolution, TCP, TLS as `tls` says) to
    /// `service`, for pool `key`.
    fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&UpstreamTls>,
        key: Arc<str>,
    ) -> impl Future<Output = std::io::Result<PooledConn<Self::Stream>>> + Send;

    /// Runs `fut` for at most `limit`; `None` if the time ran out first.
    fn within<F: Future + Send>(
        &self,
        limit: Duration,
        fut: F,
    ) -> impl Future<Output = Option<F::Output>> + Send;
}

/// Makes the call: connect (or a pooled connection), request, response, all within
/// `req.timeout`, with TLS as `tls` says (`None`: the defaults). A pooled
/// connection that turns out closed before any response byte is replaced by a
/// new one when the exchange says the request may be retried.
pub async fn perform<C: CalloutConns>(
    conns: &C,
    limits: CalloutLimits,
    req: CalloutRequest,
    tls: Option<&UpstreamTls>,
) -> Result<Response, CalloutFailure> {
    let (target, _) = req
        .prepare(limits)
        .map_err(CalloutFailure::InvalidRequest)?;
    let timeout = req.timeout;
    let started = conns.now();
    // Boxed: the exchange is a large future, and only the calls carry it.
    let outcome = conns
        .within(timeout, Box::pin(run(conns, limits, &req, &target, tls)))
        .await;
    let result = outcome.unwrap_or(Err(CalloutFailure::Timeout(timeout)));
    let elapsed = conns.now().saturating_duration_since(started);
    match &result {
        Ok(response) => tracing::debug!(
            method = %req.method,
            target = %target.pool_key(),
            status = response.status,
            ?elapsed,
            "callout done"
        ),
        Err(err) => tracing::debug!(
            method = %req.method,
            target = %target.pool_key(),
            kind = err.kind().as_str(),
            error = %err,
            ?elapsed,
            "callout failed"
        ),
    }
    result
}

async fn run<C: CalloutConns>(
    conns: &C,
    limits: CalloutLimits,
    req: &CalloutRequest,
    target: &CalloutTarget,
    tls: Option<&UpstreamTls>,
) -> Result<Response, CalloutFailure> {
    // Connections with other TLS settings (another client certificate) are
    // in pools of their own.
    let key = &match tls {
        Some(tls) => UpstreamTls::pool_key(Some(tls), &target.service),
        None => target.pool_key().clone(),
    };
    loop {
        let (mut conn, reused) = match conns.checkout(key, conns.now()) {
            Some(conn) => (conn, true),
            None => {
                let conn = conns
                    .connect(&target.service, tls, key.clone())
                    .await
                    .map_err(|source| CalloutFailure::Connect {
                        target: key.clone(),
                        source,
                    })?;
                (conn, false)
            }
        };
        let mut exchange =
            CalloutExchange::new(req, target, limits).map_err(CalloutFailure::InvalidRequest)?;
        match exchange_on(&mut conn.stream, &mut exchange).await {
            Ok(Completed { response, reusable }) => {
                if reusable {
                    let now = conns.now();
                    conns.close_expired(now);
                    conns.checkin(conn, now);
                }
                return Ok(response);
            }
            Err(err) if reused && exchange.may_retry_on_new_connection() => {
                tracing::debug!(target = %key, error = %err, "pooled connection failed; retrying");
            }
            Err(Broken::Io(source)) => {
                return Err(CalloutFailure::Io {
                    target: key.clone(),
                    source,
                })
            }
            Err(Broken::Response(source)) => {
                return Err(CalloutFailure::Response {
                    target: key.clone(),
                    source,
                })
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
async fn exchange_on<S: PollStream>(
    conn: &mut S,
    exchange: &mut CalloutExchange,
) -> Result<Completed, Broken> {
    let mut buf = vec![0u8; READ_BUFFER];
    // After a write error only reading goes on: the server may have answered
    // before it stopped reading, and reading shows how the connection ended.
    let mut write_failed = false;
    poll_fn(|cx| loop {
        let mut progressed = false;
        while !write_failed && !exchange.pending().is_empty() {
            match conn.poll_write(cx, exchange.pending()) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    exchange.written(n);
                    progressed = true;
                }
                Poll::Ready(_) => write_failed = true,
                Poll::Pending => break,
            }
        }
        if !write_failed {
            if let Poll::Ready(Err(_)) = conn.poll_flush(cx) {
                write_failed = true;
            }
        }
        if let Poll::Ready(read) = conn.poll_read(cx, &mut buf) {
            let n = match read {
                Ok(n) => n,
                // A TLS peer that closed without close_notify: the end of the
                // stream as far as HTTP framing goes, which decides whether the
                // response was complete.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Poll::Ready(Err(Broken::Io(e))),
            };
            exchange.handle_input(&buf[..n]);
            match exchange.poll_output() {
                Some(Ok(done)) => return Poll::Ready(Ok(done)),
                Some(Err(e)) => return Poll::Ready(Err(Broken::Response(e))),
                None if n == 0 => {
                    return Poll::Ready(Err(Broken::Response(CalloutError::NoResponse)))
                }
                None => progressed = true,
            }
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await
}
