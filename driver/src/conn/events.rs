//! Acting on a [`ProxyConn`]'s events: the part of driving a client connection
//! that is the same on every runtime.
//!
//! The adapter provides what only it can do (pooled and new backend sockets,
//! tasks, the clock) through [`ConnHost`]; the decisions about what an event means
//! (the pool or a new connection, the log level of a `trace`) are made here
//! once. Shared state is the host's [`ConnStore`]: this file holds no state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use portcullis_core::callout::CalloutRequest;
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::UpstreamTls;
use portcullis_core::policy::jwt::KeySetSink;
use portcullis_core::policy::respond::TraceRecord;
use portcullis_core::policy::store::{StoreAnswer, StoreRequest};
use portcullis_core::proxy::conn::{Event, ProxyConn, UpstreamFailure};

use crate::callout::client::CalloutClient;
use crate::callout::OneWaySlot;
use crate::jwks::key_sets;

/// How long connecting to a backend may take when the connection has no deadline
/// of its own.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What an adapter provides to act on a connection's events.
pub trait ConnHost {
    /// An open backend connection.
    type Upstream;
    /// What makes the policies' calls.
    type Calls: CalloutClient;

    /// The current time, on the adapter's clock.
    fn now(&self) -> Instant;

    /// An idle pooled connection to `key` that is still open, if any.
    fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<Self::Upstream>;

    /// Gives a clean connection back for reuse.
    fn checkin(&self, upstream: Self::Upstream, now: Instant);

    /// Opens a new connection to `service` with TLS as `tls` says (`None`:
    /// the defaults), for pool `key`, giving up at `deadline` (`None`).
    fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&Arc<UpstreamTls>>,
        key: &Arc<str>,
        deadline: Instant,
    ) -> impl Future<Output = Option<std::io::Result<Self::Upstream>>>;

    /// The client for `send-request` calls.
    fn calls(&self) -> &Self::Calls;

    /// A place for one more `send-one-way-request`, or `None` when too many
    /// are in flight (see [`OneWaySlot`]).
    fn one_way_slot(&self) -> Option<OneWaySlot>;

    /// Runs a `send-one-way-request` in a task of its own, with TLS as `tls`
    /// says (see [`one_way_call`]).
    fn spawn_one_way(
        &self,
        request: CalloutRequest,
        tls: Option<Arc<UpstreamTls>>,
        slot: OneWaySlot,
    );

    /// A request was answered 503 for lack of configuration at `now`: logged,
    /// rate-limited across the gateway.
    fn note_not_ready(&self, now: Instant);

    /// A WebSocket handshake is about to go to its backend: whether the
    /// gateway has room for one more tunnel. The room is held until
    /// [`ConnHost::release_tunnel`] (or the connection ends).
    fn reserve_tunnel(&self) -> bool {
        true
    }

    /// The backend connection of a handshake or tunnel was let go: its room
    /// goes back (nothing when the connection holds none).
    fn release_tunnel(&self) {}
}

/// Where a connection's shared-state requests go: the driver's store session
/// (in process, or a remote store).
pub trait ConnStore: KeySetSink {
    /// Answers `request` (a one-way request's answer is dropped).
    fn submit(&mut self, request: StoreRequest) -> impl Future<Output = StoreAnswer>;

    /// Of `urls`, those a token naming an unknown key may have fetched again
    /// at `now` (throttled per URL across the gateway).
    fn claim_key_refresh(&mut self, urls: &[String], now: Instant) -> Vec<String>;
}

/// What is left to do once the pending events are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterEvents {
    /// Move bytes again.
    Continue,
    /// Write what is pending for the client, then close (see `Event::CloseClient`).
    Close {
        /// Close our side first and drain the client's for a moment.
        linger: bool,
    },
}

/// Handles every event `conn` has pending; `upstream` is the connection's backend
/// connection, opened and released here; `store` answers its store requests.
pub async fn handle_events<H: ConnHost, S: ConnStore>(
    conn: &mut ProxyConn,
    host: &H,
    upstream: &mut Option<H::Upstream>,
    store: &mut S,
) -> AfterEvents {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::ConnectUpstream { target, fresh } => {
                if target.is_tunnel() && !host.reserve_tunnel() {
                    tracing::warn!("WebSocket handshake refused: too many tunnels open");
                    conn.handle_upstream_failed(UpstreamFailure::TunnelLimit, host.now());
                    continue;
                }
                let service = target.service();
                // The backend with its TLS settings: a pooled connection made
                // with others (or another client certificate) is not this one's.
                let key = target.pool_key();
                let pooled = if fresh {
                    None
                } else {
                    host.checkout(key, host.now())
                };
                if let Some(pooled) = pooled {
                    *upstream = Some(pooled);
                    conn.handle_upstream_connected(true, host.now());
                    continue;
                }
                let deadline = conn
                    .poll_timeout()
                    .unwrap_or_else(|| host.now() + DEFAULT_CONNECT_TIMEOUT);
                // Boxed: connecting (with name resolution) is a large future that
                // would otherwise be part of every connection's state, idle or not.
                match Box::pin(host.connect(service, target.tls(), key, deadline)).await {
                    Some(Ok(opened)) => {
                        *upstream = Some(opened);
                        conn.handle_upstream_connected(false, host.now());
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, backend = %key, "backend connect failed");
                        conn.handle_upstream_failed(UpstreamFailure::ConnectFailed, host.now());
                    }
                    None => conn.handle_timeout(host.now()),
                }
            }
            Event::ReleaseUpstream { reuse } => {
                host.release_tunnel();
                if let Some(up) = upstream.take() {
                    if reuse {
                        host.checkin(up, host.now());
                    }
                }
            }
            Event::Call {
                request,
                one_way: true,
            } => {
                // Nobody waits for these, so a flood of them must not pile up
                // tasks without bound: over the cap they are dropped, loudly.
                if let Some(slot) = host.one_way_slot() {
                    let tls = request.tls.clone();
                    host.spawn_one_way(request.into(), tls, slot);
                } else {
                    tracing::warn!(url = %request.url, "send-one-way-request dropped: too many in flight");
                }
            }
            Event::Call {
                request,
                one_way: false,
            } => {
                // Boxed for the same reason as connecting: only requests that
                // make calls carry the future.
                let tls = request.tls.clone();
                let result = Box::pin(host.calls().perform_with_tls(request.into(), tls)).await;
                conn.handle_call_done(result.map_err(|e| e.to_policy_failure()), host.now());
            }
            Event::CallAll { requests, any } => {
                // A `wait` of send-requests: every call in flight at once.
                let calls: Vec<_> = requests
                    .into_iter()
                    .map(|request| {
                        let tls = request.tls.clone();
                        host.calls().perform_with_tls(request.into(), tls)
                    })
                    .collect();
                let results = Box::pin(join_or_first(calls, any)).await;
                let results = results
                    .into_iter()
                    .map(|r| r.map(|r| r.map_err(|e| e.to_policy_failure())))
                    .collect();
                conn.handle_calls_done(results, host.now());
            }
            Event::Store { request, one_way } => {
                let answer = store.submit(request).await;
                // A failure was counted and logged (at most once a second) by
                // the store; here it is one request's.
                if let StoreAnswer::Unavailable(reason) | StoreAnswer::Refused(reason) = &answer {
                    tracing::debug!(%reason, "shared-state store unavailable");
                }
                if !one_way {
                    conn.handle_store_done(answer, host.now());
                }
            }
            Event::RefreshKeySets { urls } => {
                let urls = store.claim_key_refresh(&urls, host.now());
                // Boxed like calls: only requests that refresh carry the future.
                Box::pin(key_sets::refresh_for_unknown_key(
                    host.calls(),
                    &*store,
                    &urls,
                ))
                .await;
                conn.handle_key_sets_refreshed(host.now());
            }
            Event::Trace(t) => log_trace(&t),
            Event::NotReady => host.note_not_ready(host.now()),
            Event::CloseClient { linger } => {
                drop(upstream.take());
                return AfterEvents::Close { linger };
            }
        }
    }
    AfterEvents::Continue
}

/// Makes a `send-one-way-request` call; the adapter runs it as a task of its own.
/// `slot` is given back however the task ends (also if it is dropped).
pub async fn one_way_call<C: CalloutClient>(
    calls: C,
    request: CalloutRequest,
    tls: Option<Arc<UpstreamTls>>,
    slot: OneWaySlot,
) {
    let _slot = slot;
    let url = request.url.clone();
    if let Err(err) = calls.perform_with_tls(request, tls).await {
        tracing::warn!(error = %err, %url, "send-one-way-request failed");
    }
}

/// Logs a `trace` policy's record at the level its severity names.
pub fn log_trace(t: &TraceRecord) {
    match t.severity.as_str() {
        "error" => {
            tracing::error!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
        }
        "information" => {
            tracing::info!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
        }
        _ => {
            tracing::debug!(source = %t.source, metadata = ?t.metadata, "{}", t.message)
        }
    }
}

/// Runs `futures` at once, in this task: every output in order, or with `any`
/// only the first to finish (the others are dropped, which cancels them; their
/// places are `None`).
pub async fn join_or_first<F: Future>(futures: Vec<F>, any: bool) -> Vec<Option<F::Output>> {
    let mut running: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, done) in running.iter_mut().zip(out.iter_mut()) {
            let Some(f) = slot else { continue };
            match f.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    *done = Some(v);
                    *slot = None;
                    if any {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ready on its second poll (after waking itself on the first).
    fn ready_on_second_poll(v: u32) -> impl Future<Output = u32> {
        let mut polled = false;
        std::future::poll_fn(move |cx| {
            if polled {
                Poll::Ready(v)
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }

    #[test]
    fn all_waits_for_every_future_and_any_for_the_first() {
        let never = || std::future::pending::<u32>();
        let all = block_on(join_or_first(
            vec![
                Box::pin(ready_on_second_poll(1)) as Pin<Box<dyn Future<Output = u32>>>,
                Box::pin(std::future::ready(2)),
            ],
            false,
        ));
        assert_eq!(all, [Some(1), Some(2)]);
        let any = block_on(join_or_first(
            vec![
                Box::pin(never()) as Pin<Box<dyn Future<Output = u32>>>,
                Box::pin(ready_on_second_poll(7)),
                Box::pin(never()),
            ],
            true,
        ));
        assert_eq!(any, [None, Some(7), None]);
        assert!(block_on(join_or_first(Vec::<std::future::Ready<u32>>::new(), true)).is_empty());
    }
}
