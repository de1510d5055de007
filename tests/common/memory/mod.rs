//! The in-memory harness: the gateway's connection machine (`ProxyConn`)
//! driven exactly as the driver drives it, with no socket, thread or clock.
//! What the driver does is the driver's own code: the connection settings
//! come from `portcullis_driver::setup::gateway_conn_settings`, events are
//! acted on by `portcullis_driver::conn::events::handle_events`, shared state
//! is the driver's `InProcessStore` (one `StoreSession` per client
//! connection), call-outs and OpenID key set fetches are made by the driver's
//! call-out client; only the sockets and the clock are memory. Backends and
//! call-out targets are scripted `MemBackend`s that record what they receive
//! (requests and raw bytes); time is an input the test advances by hand
//! (`MemGateway::advance`), so windows need no sleeping.
//!
//! The shapes match the socket suite's: `MemBackend` has the `addr`,
//! `only_request()`, `requests()`, `raw_bytes()` and `connections()` of
//! `common::Backend` (recording the same `Received`); `MemGateway::client()`
//! gives a connection with the `send`/`response`/`roundtrip`/`expect_closed`
//! of `common::Client`; `get_with`/`call` give the same `Response`. So a
//! decision test moves from sockets to memory with few edits: `#[runtimes]
//! async fn` becomes `#[test] fn`, `TestGateway::start(rt, ..)` becomes
//! `MemGateway::start(..)`, `Backend` becomes `MemBackend`, and the `.await`s
//! go.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::Method;
use bytes::BytesMut;
use portcullis_core::callout::{CalloutLimits, MAX_DISCOVERY_DOCUMENT};
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, ResponseHead};
use portcullis_core::proxy::setup::OpenIdUrls;
use portcullis_core::proxy::{ConfigSource, ConnSettings, IdSeq, ProxyConn};
use portcullis_driver::callout::OneWayCalls;
use portcullis_driver::jwks::key_sets::{fetch_key_set, store_key_set};
use portcullis_driver::setup::{gateway_conn_settings, telemetry_settings};
use portcullis_driver::store::InProcessStore;
use portcullis_driver::telemetry::Hub;
use portcullis_driver::JwksOptions;
use serde_json::Value;

mod backend;
mod callout;
mod client;

pub use backend::{MemBackend, MemStream};
pub use callout::{MemCallouts, MemClock};
pub use client::MemClient;

use super::{config_for, response, GatewayOptions, Reply, Response};
use callout::poll_now;

/// Most steps one exchange may take before the harness calls it stuck.
const MAX_STEPS: usize = 100_000;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

/// A gateway in memory: the driver's connection settings and store, a pool
/// of idle backend connections, the call-out client and a hand-driven clock.
pub struct MemGateway {
    settings: Arc<ConnSettings>,
    store: Arc<InProcessStore>,
    hub: Arc<Hub>,
    clock: Arc<MemClock>,
    callouts: MemCallouts,
    one_way: OneWayCalls,
    conns: Cell<u64>,
    /// Requests answered 503 for lack of configuration.
    not_ready: Cell<usize>,
    /// Idle backend connections by pool key, as the driver's pool keeps them.
    pool: RefCell<HashMap<Arc<str>, Vec<MemStream>>>,
}

impl MemGateway {
    /// A gateway serving the configuration document `doc`, with default options.
    pub fn start(doc: &Value) -> MemGateway {
        MemGateway::start_with(doc, |_| {})
    }

    /// A gateway serving `doc`, with the options `tweak` sets (limits,
    /// timeouts, underscores), as `TestGateway::start_with`.
    pub fn start_with(doc: &Value, tweak: impl FnOnce(&mut GatewayOptions)) -> MemGateway {
        let bytes = serde_json::to_vec(doc).unwrap();
        let snapshot = Snapshot::from_json(&bytes).expect("the document parses");
        let config = Arc::new(CompiledConfig::compile(snapshot).expect("the document compiles"));
        let mut options = GatewayOptions::new("gateway.json".into());
        tweak(&mut options);
        let gateway_id = options.effective_gateway_id(None);
        let hub = Arc::new(Hub::new(telemetry_settings(&options, &gateway_id, None)));
        let clock = Arc::new(MemClock::new(Instant::now()));
        let source = Arc::new(Fixed(config));
        // As `Gateway::start`. The wall clock is read once, for the anchor
        // policies compute their time from (tokens minted by tests carry real
        // times); after that, time moves only with `advance`. The secret is
        // fixed: runs repeat.
        let settings = Arc::new(gateway_conn_settings(
            &options,
            source.clone(),
            &gateway_id,
            hub.clone(),
            clock.now(),
            SystemTime::now(),
            [7; 32],
        ));
        let store = Arc::new(InProcessStore::new(settings.policy.store_seed));
        let gw = MemGateway {
            settings,
            store,
            hub,
            callouts: MemCallouts::new(clock.clone())
                .with_entra_authority(options.entra_authority.as_deref()),
            clock,
            one_way: OneWayCalls::default(),
            conns: Cell::new(0),
            not_ready: Cell::new(0),
            pool: RefCell::new(HashMap::new()),
        };
        // The refresher's first round: each OpenID configuration fetched
        // before the first request (the socket suites wait for it instead).
        if let Some(urls) = OpenIdUrls::default().poll_changed(&*source) {
            gw.fetch_key_sets(&urls);
        }
        gw
    }

    /// A gateway with API `/api` in front of `backend`.
    pub fn for_backend(backend: &MemBackend) -> MemGateway {
        MemGateway::start(&config_for(backend.addr))
    }

    /// Fetches the OpenID configurations at `urls` and their key sets as the
    /// driver's refresher does (its schedule firing), installing what they give.
    pub fn fetch_key_sets(&self, urls: &[String]) {
        let calls = self.callouts.clone().with_limits(CalloutLimits {
            max_body_bytes: MAX_DISCOVERY_DOCUMENT,
            ..CalloutLimits::default()
        });
        let timeout = JwksOptions::default().request_timeout;
        for url in urls {
            let fetched = poll_now(fetch_key_set(&calls, url, timeout))
                .unwrap_or_else(|| panic!("an in-memory key set fetch waited on nothing"));
            if let Ok(fetched) = fetched {
                store_key_set(&*self.store, url, &fetched);
            }
        }
    }

    /// The gateway's clock.
    pub fn clock(&self) -> &MemClock {
        &self.clock
    }

    /// Moves the gateway's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The gateway's shared-state store.
    pub fn store(&self) -> &Arc<InProcessStore> {
        &self.store
    }

    /// The gateway's telemetry hub (its metrics).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Requests answered 503 because no configuration was loaded.
    pub fn not_ready(&self) -> usize {
        self.not_ready.get()
    }

    /// Nothing to stop in memory; kept so moved tests read the same.
    pub fn stop(&self) {}

    /// A new client connection.
    pub fn client(&self) -> MemClient<'_> {
        let n = self.conns.get();
        self.conns.set(n + 1);
        // Loopback, as the socket suite's clients: ip-filter and
        // X-Forwarded-For assertions read the same in both.
        let conn = ProxyConn::new(
            self.settings.clone(),
            "127.0.0.1",
            IdSeq::new(n),
            self.clock.now(),
        );
        MemClient {
            gw: self,
            conn,
            store: self.store.session(),
            input: Vec::new(),
            got: BytesMut::new(),
            written: Vec::new(),
            upstream: None,
            closed: None,
            eof: false,
            eof_read: false,
        }
    }

    /// Sends `request` on a new client connection and returns the complete
    /// response to `method`; then the client leaves.
    pub fn exchange(&self, method: &str, request: &[u8]) -> Response {
        let mut c = self.client();
        c.send(request);
        c.response_to(&Method::from_bytes(method.as_bytes()).unwrap())
    }
}

/// Takes a complete final response (1xx skipped) from the start of `buf`, if
/// all there; `eof`: the connection ended, which ends a close-delimited body.
fn take_response(buf: &mut BytesMut, method: &Method, eof: bool) -> Option<Response> {
    let limits = Limits {
        max_head_bytes: 1 << 20,
        max_headers: 1000,
        ..Limits::default()
    };
    let mut rest = buf.clone();
    loop {
        let head = ResponseHead::parse(&mut rest, &limits, method).ok()??;
        if head.status < 200 {
            continue;
        }
        let mut decoder = BodyDecoder::new(head.framing, None, 64 * 1024);
        let mut body = Vec::new();
        loop {
            let step = match decoder.decode(&mut rest).ok()? {
                None if eof => Some(decoder.finish_on_eof().ok()?),
                other => other,
            };
            match step? {
                BodyEvent::Data(d) => body.extend_from_slice(&d),
                BodyEvent::End { trailers } => {
                    *buf = rest;
                    return Some(Response {
                        status: head.status,
                        head,
                        body,
                        trailers,
                    });
                }
            }
        }
    }
}

/// An address no in-memory backend has: connecting to it is refused, as to
/// `common::closed_port()`.
pub fn closed_port() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 0], 9))
}

/// One request on a new connection; the complete response.
pub fn call(
    gw: &MemGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    gw.exchange(
        method,
        &super::policy_docs::request(method, path, headers, body),
    )
}

/// `GET path` with these headers on a new connection.
pub fn get_with(gw: &MemGateway, path: &str, headers: &[(&str, &str)]) -> Response {
    call(gw, "GET", path, headers, b"")
}

/// As `policy_docs::status_backend`: `/status/NNN...` answered with status
/// NNN, anything else 200; the body is the path received.
pub fn status_backend() -> MemBackend {
    MemBackend::start(|r| {
        let target = r.target();
        let status = target
            .strip_prefix("/status/")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        Reply::Send(response(
            status,
            &[("Content-Type", "text/plain")],
            target.as_bytes(),
        ))
    })
}
