//! Tests of the connection state machine, driven by hand as an adapter would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::proxy::*;

struct Fixed(Option<Arc<CompiledConfig>>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        self.0.clone()
    }
}

const CONFIG: &str = r#"{
  "revision": 7,
  "apis": [
    {
      "id": "users", "displayName": "Users", "path": "users",
      "serviceUrl": "http://backend.test:9000/api",
      "subscriptionRequired": false,
      "timeoutSeconds": 10,
      "operations": [
        {"id": "get", "displayName": "get", "method": "GET", "urlTemplate": "/{id}"},
        {"id": "head", "displayName": "head", "method": "HEAD", "urlTemplate": "/{id}"},
        {"id": "post", "displayName": "post", "method": "POST", "urlTemplate": "/"},
        {"id": "list", "displayName": "list", "method": "GET", "urlTemplate": "/"}
      ]
    }
  ],
  "backends": [],
  "namedValues": []
}"#;

fn settings_with(limits: Limits, config: Option<Arc<CompiledConfig>>) -> Arc<ConnSettings> {
    Arc::new(ConnSettings {
        limits,
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: portcullis_core::proxy::PolicyEnv::default(),
        telemetry: portcullis_core::telemetry::discard(),
        allow_underscores_in_headers: false,
        https_port: None,
    })
}

fn config() -> Arc<CompiledConfig> {
    let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
    Arc::new(CompiledConfig::compile(snapshot).expect("compiles"))
}

struct Harness {
    conn: ProxyConn,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        let now = Instant::now();
        Harness {
            conn: ProxyConn::new(
                settings_with(limits, Some(config())),
                "192.0.2.7",
                portcullis_core::proxy::IdSeq::default(),
                now,
            ),
            now,
        }
    }

    fn client_sends(&mut self, bytes: &[u8]) {
        self.conn.handle_client_data(bytes, self.now);
    }

    fn upstream_sends(&mut self, bytes: &[u8]) {
        self.conn.handle_upstream_data(bytes, self.now);
    }

    fn client_gets(&mut self) -> String {
        let out = self.conn.client_pending().to_vec();
        self.conn.client_written(out.len(), self.now);
        String::from_utf8(out).expect("utf-8 in tests")
    }

    fn upstream_gets(&mut self) -> String {
        let out = self.conn.upstream_pending().to_vec();
        self.conn.upstream_written(out.len(), self.now);
        String::from_utf8(out).expect("utf-8 in tests")
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    fn expect_connect(&mut self) -> bool {
        let events = self.events();
        match events.as_slice() {
            [Event::ConnectUpstream { target, fresh }] => {
                assert_eq!(&*target.service().pool_key, "http://backend.test:9000");
                *fresh
            }
            other => panic!("expected one connect, got {other:?}"),
        }
    }

    /// Lets time pass, firing every deadline that falls due, as an adapter would.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        while let Some(at) = self.conn.poll_timeout() {
            if at > self.now {
                break;
            }
            self.conn.handle_timeout(self.now);
        }
    }
}

fn is_close(e: &Event) -> bool {
    matches!(e, Event::CloseClient { .. })
}

#[test]
fn forwards_a_get_and_reuses_both_connections() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/42?x=1 HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\n\r\n");
    assert!(!h.expect_connect());
    h.conn.handle_upstream_connected(false, h.now);
    let sent = h.upstream_gets();
    assert!(sent.starts_with("GET /api/42?x=1 HTTP/1.1\r\n"), "{sent}");
    let lower = sent.to_ascii_lowercase();
    assert!(lower.contains("host: api.example\r\n"), "{sent}");
    assert!(lower.contains("accept: */*\r\n"));
    assert!(lower.contains("x-forwarded-for: 192.0.2.7\r\n"), "{sent}");
    assert!(lower.contains("x-forwarded-proto: http\r\n"));
    assert!(lower.contains("x-forwarded-host: api.example\r\n"));
    assert!(
        !lower.contains("x-drop"),
        "Connection-named field forwarded: {sent}"
    );
    assert!(!lower.contains("\r\nte:"), "TE forwarded: {sent}");
    assert!(
        !lower.contains("\r\nconnection:"),
        "Connection forwarded: {sent}"
    );

    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nhi");
    let got = h.client_gets();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.to_ascii_lowercase().contains("content-length: 2\r\n"));
    assert!(!got.to_ascii_lowercase().contains("keep-alive: timeout"));
    assert!(got.ends_with("\r\n\r\nhi"));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::ReleaseUpstream { reuse: true }]),
        "{events:?}"
    );
    // The connection waits for the next request.
    assert!(h.conn.wants_client_read());
    h.client_sends(b"GET /users/43 HTTP/1.1\r\nHost: api.example\r\n\r\n");
    h.expect_connect();
}

#[test]
fn unknown_path_gets_apims_404_and_the_connection_stays() {
    let mut h = Harness::new();
    h.client_sends(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    let got = h.client_gets();
    assert!(got.starts_with("HTTP/1.1 404"), "{got}");
    assert!(got.ends_with(r#"{"statusCode":404,"message":"Resource not found"}"#));
    assert!(h.events().is_empty());
    assert!(h.conn.wants_client_read());
}

#[test]
fn status_probe_answers_200() {
    let mut h = Harness::new();
    h.client_sends(b"GET /status-0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(h.client_gets().starts_with("HTTP/1.1 200"));
}

#[test]
fn status_probe_without_configuration_answers_503() {
    let now = Instant::now();
    let settings = settings_with(Limits::default(), None);
    let mut conn = ProxyConn::new(
        settings.clone(),
        "::1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    let req = b"GET /status-0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n";
    conn.handle_client_data(req, now);
    assert!(conn.client_pending().starts_with(b"HTTP/1.1 503"));
    // The driver logs the 503 (rate-limited), told by an event.
    assert!(matches!(conn.poll_event(), Some(Event::NotReady)));
}

#[test]
fn no_configuration_gives_503() {
    let now = Instant::now();
    let mut conn = ProxyConn::new(
        settings_with(Limits::default(), None),
        "::1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    let req = b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n";
    conn.handle_client_data(req, now);
    assert!(conn.client_pending().starts_with(b"HTTP/1.1 503"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new();
    h.client_sends(
        b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    assert!(h.upstream_gets().starts_with("GET /api/1 "));
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    assert!(h.client_gets().ends_with("\r\n\r\n1"));
    let events = h.events();
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: true }));
    assert!(matches!(events[1], Event::ConnectUpstream { .. }));
    h.conn.handle_upstream_connected(true, h.now);
    assert!(h.upstream_gets().starts_with("GET /api/2 "));
}

#[test]
fn chunked_request_body_is_reframed_upstream() {
    let mut h = Harness::new();
    h.client_sends(b"POST /users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    let sent = h.upstream_gets();
    assert!(sent.starts_with("POST /api HTTP/1.1\r\n"), "{sent}");
    assert!(sent
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked\r\n"));
    assert!(sent.ends_with("\r\n\r\n5\r\nhello\r\n"), "{sent:?}");
    h.client_sends(b"0\r\nX-Sum: 1\r\n\r\n");
    assert_eq!(h.upstream_gets(), "0\r\nX-Sum: 1\r\n\r\n");
}

#[test]
fn close_delimited_response_becomes_chunked_for_http11() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 200 OK\r\n\r\nabc");
    h.conn.handle_upstream_data(b"", h.now);
    let got = h.client_gets();
    assert!(
        got.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{got}"
    );
    assert!(got.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{got:?}");
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::ReleaseUpstream { reuse: false }]),
        "{events:?}"
    );
}

#[test]
fn http10_client_gets_close_delimited_body_and_close() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.0\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let got = h.client_gets();
    assert!(
        !got.to_ascii_lowercase().contains("transfer-encoding"),
        "{got}"
    );
    assert!(got.ends_with("\r\n\r\nabc"), "{got:?}");
    let events = h.events();
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: true }));
    // A complete exchange ends at a request boundary: no need to linger.
    assert!(matches!(events[1], Event::CloseClient { linger: false }));
}

#[test]
fn http10_keep_alive_is_honoured_with_a_length() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    let got = h.client_gets().to_ascii_lowercase();
    assert!(got.contains("connection: keep-alive\r\n"), "{got}");
    assert!(!h.events().iter().any(is_close));
}

#[test]
fn expect_continue_is_answered_once_the_backend_is_there() {
    let mut h = Harness::new();
    h.client_sends(
        b"POST /users HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(h.client_gets(), "");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    assert_eq!(h.client_gets(), "HTTP/1.1 100 Continue\r\n\r\n");
    let sent = h.upstream_gets();
    assert!(!sent.to_ascii_lowercase().contains("expect:"), "{sent}");
    h.client_sends(b"abc");
    assert_eq!(h.upstream_gets(), "abc");
}

#[test]
fn unreachable_backend_gives_502_and_keeps_the_client() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn
        .handle_upstream_failed(UpstreamFailure::ConnectFailed, h.now);
    assert!(h.client_gets().starts_with("HTTP/1.1 502"));
    let events = h.events();
    assert!(matches!(
        events.as_slice(),
        [Event::ReleaseUpstream { reuse: false }]
    ));
}

#[test]
fn slow_backend_gives_504() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.advance(Duration::from_secs(9));
    assert_eq!(h.client_gets(), "");
    h.advance(Duration::from_secs(2));
    assert!(h.client_gets().starts_with("HTTP/1.1 504"));
}

#[test]
fn connect_timeout_gives_504() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.advance(Duration::from_secs(6));
    assert!(h.client_gets().starts_with("HTTP/1.1 504"));
}

#[test]
fn stale_pooled_connection_is_retried_on_a_fresh_one() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(true, h.now);
    let first = h.upstream_gets();
    h.conn.handle_upstream_data(b"", h.now);
    let events = h.events();
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: false }));
    assert!(matches!(
        events[1],
        Event::ConnectUpstream { fresh: true, .. }
    ));
    h.conn.handle_upstream_connected(false, h.now);
    assert_eq!(h.upstream_gets(), first);
    h.upstream_sends(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert!(h.client_gets().starts_with("HTTP/1.1 204"));
}

#[test]
fn post_on_a_stale_connection_is_not_retried() {
    let mut h = Harness::new();
    h.client_sends(b"POST /users HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
    h.expect_connect();
    h.conn.handle_upstream_connected(true, h.now);
    h.upstream_gets();
    h.conn.handle_upstream_data(b"", h.now);
    assert!(h.client_gets().starts_with("HTTP/1.1 502"));
}

#[test]
fn smuggling_attempt_is_rejected_and_closed() {
    let mut h = Harness::new();
    h.client_sends(b"POST /users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let got = h.client_gets();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::CloseClient { linger: true })));
    assert!(!h.conn.wants_client_read());
}

#[test]
fn declared_body_over_the_limit_gets_413() {
    let limits = Limits {
        max_body_bytes: Some(10),
        ..Limits::default()
    };
    let mut h = Harness::with_limits(limits);
    h.client_sends(b"POST /users HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    assert!(h.client_gets().starts_with("HTTP/1.1 413"));
    assert!(h.events().iter().any(is_close));
}

#[test]
fn chunked_body_over_the_limit_gets_413() {
    let limits = Limits {
        max_body_bytes: Some(4),
        ..Limits::default()
    };
    let mut h = Harness::with_limits(limits);
    h.client_sends(b"POST /users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.client_sends(b"5\r\nhello\r\n0\r\n\r\n");
    assert!(h.client_gets().starts_with("HTTP/1.1 413"));
    let events = h.events();
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: false }));
    assert!(events.iter().any(is_close));
}

#[test]
fn slow_request_head_gets_408() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\n");
    h.advance(Duration::from_secs(31));
    assert!(h.client_gets().starts_with("HTTP/1.1 408"));
    assert!(h.events().iter().any(is_close));
}

#[test]
fn idle_connection_is_closed_silently() {
    let mut h = Harness::new();
    h.advance(Duration::from_secs(61));
    assert_eq!(h.client_gets(), "");
    assert!(h.events().iter().any(is_close));
}

#[test]
fn shutdown_closes_idle_connections_at_once() {
    let mut h = Harness::new();
    h.conn.begin_shutdown();
    assert!(h.events().iter().any(is_close));
}

#[test]
fn shutdown_lets_the_request_in_flight_finish_with_close() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.conn.begin_shutdown();
    assert!(h.events().is_empty());
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let got = h.client_gets();
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert!(got.ends_with("ok"));
    let events = h.events();
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: true }));
    assert!(is_close(&events[1]));
}

#[test]
fn head_response_keeps_the_declared_length_without_a_body() {
    let mut h = Harness::new();
    h.client_sends(b"HEAD /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    let got = h.client_gets();
    assert!(
        got.to_ascii_lowercase()
            .contains("content-length: 1234\r\n"),
        "{got}"
    );
    assert!(got.ends_with("\r\n\r\n"));
    assert!(matches!(
        h.events().as_slice(),
        [Event::ReleaseUpstream { reuse: true }]
    ));
}

#[test]
fn truncated_response_body_closes_the_client() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    h.conn.handle_upstream_data(b"", h.now);
    let events = h.events();
    assert!(events.iter().any(is_close), "{events:?}");
    assert!(matches!(events[0], Event::ReleaseUpstream { reuse: false }));
}

#[test]
fn interim_responses_are_not_relayed() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    h.upstream_sends(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let got = h.client_gets();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.to_ascii_lowercase().contains("content-length: 0"));
}

#[test]
fn large_response_is_read_with_backpressure() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    h.upstream_gets();
    let total = 1 << 20;
    h.upstream_sends(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes());
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    let mut received = 0;
    while sent < total {
        if h.conn.wants_upstream_read() {
            h.upstream_sends(&chunk);
            sent += chunk.len();
        } else {
            // The client must drain before more is read from the backend.
            assert!(h.conn.client_pending().len() >= 64 * 1024);
            received += h.client_gets().len();
        }
        assert!(h.conn.client_pending().len() <= 64 * 1024 + chunk.len());
    }
    received += h.client_gets().len();
    assert!(received > total);
}

const KEYED: &str = r#"{
  "revision": 1,
  "apis": [
    {"id": "a", "path": "a", "serviceUrl": "http://backend.test:9000",
     "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]},
    {"id": "b", "path": "b", "serviceUrl": "http://backend.test:9000",
     "subscriptionKeyParameterNames": {"header": "X-Key", "query": "key"},
     "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]}
  ],
  "subscriptions": [
    {"id": "all", "scope": "/apis", "primaryKey": "0123456789abcdef-all-1", "secondaryKey": "0123456789abcdef-all-2"},
    {"id": "only-a", "scope": "/apis/a", "primaryKey": "0123456789abcdef-a-1", "secondaryKey": "0123456789abcdef-a-2"},
    {"id": "off", "scope": "/apis", "state": "suspended", "primaryKey": "0123456789abcdef-off-1", "secondaryKey": "0123456789abcdef-off-2"}
  ]
}"#;

fn keyed_status(request: &str) -> String {
    let snapshot = Snapshot::from_json(KEYED.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let now = Instant::now();
    let mut conn = ProxyConn::new(
        settings_with(Limits::default(), Some(config)),
        "::1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    conn.handle_client_data(request.as_bytes(), now);
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    if matches!(events.first(), Some(Event::ConnectUpstream { .. })) {
        return "forwarded".into();
    }
    String::from_utf8_lossy(conn.client_pending()).into_owned()
}

#[test]
fn subscription_keys_open_the_apis_in_their_scope() {
    let missing = keyed_status("GET /a/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    assert!(missing.contains("missing subscription key"));
    let ok =
        "GET /a/x HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: 0123456789abcdef-all-2\r\n\r\n";
    assert_eq!(keyed_status(ok), "forwarded");
    let by_query = "GET /a/x?subscription-key=0123456789abcdef-a-1 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(keyed_status(by_query), "forwarded");
    let out_of_scope =
        keyed_status("GET /b/x HTTP/1.1\r\nHost: h\r\nX-Key: 0123456789abcdef-a-1\r\n\r\n");
    assert!(
        out_of_scope.contains("invalid subscription key"),
        "{out_of_scope}"
    );
    let custom = "GET /b/x?key=0123456789abcdef-all-1 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(keyed_status(custom), "forwarded");
    let suspended = keyed_status(
        "GET /a/x HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: 0123456789abcdef-off-1\r\n\r\n",
    );
    assert!(
        suspended.contains("invalid subscription key"),
        "{suspended}"
    );
    let unknown =
        keyed_status("GET /a/x HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: nope\r\n\r\n");
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
}

#[test]
fn bad_subscriptions_are_rejected_with_a_reason() {
    let bad_scope = KEYED.replace("\"/apis/a\"", "\"/apis/zz\"");
    let err = CompiledConfig::compile(Snapshot::from_json(bad_scope.as_bytes()).expect("parses"))
        .expect_err("unknown api in scope");
    assert!(err.to_string().contains("only-a"), "{err}");
    let dup = KEYED.replace("0123456789abcdef-a-2", "0123456789abcdef-all-1");
    let err = CompiledConfig::compile(Snapshot::from_json(dup.as_bytes()).expect("parses"))
        .expect_err("duplicate key");
    assert!(err.to_string().contains("already used"), "{err}");
    let short = KEYED.replace("0123456789abcdef-a-2", "short");
    assert!(
        CompiledConfig::compile(Snapshot::from_json(short.as_bytes()).expect("parses")).is_err()
    );
    let debug = format!(
        "{:?}",
        Snapshot::from_json(KEYED.as_bytes()).expect("parses")
    );
    assert!(!debug.contains("0123456789abcdef"), "keys in Debug output");
}

#[test]
fn idle_connection_gives_its_buffers_back() {
    let mut h = Harness::new();
    h.client_sends(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    h.client_gets();
    assert!(h.conn.buffer_capacity() > 0);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.conn.buffer_capacity(), 0);
    assert!(h.events().is_empty(), "closed too early");
    h.advance(Duration::from_secs(59));
    assert!(h.events().iter().any(is_close));
}

#[test]
fn idle_connection_parks_and_resumes_where_it_was() {
    let mut h = Harness::new();
    assert!(
        !h.conn.can_park(),
        "a new connection has not given buffers back"
    );
    h.client_sends(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    let first = h.client_gets();
    assert!(!h.conn.can_park(), "parked within the shrink delay");
    assert!(h.conn.park().is_none());
    h.advance(Duration::from_secs(2));
    assert!(h.conn.can_park());
    let idle_until = h.conn.poll_timeout().expect("an idle deadline");
    let parked = h.conn.park().expect("parks");
    assert_eq!(parked.deadline(), idle_until);
    // Parked: a few words, not the machine.
    assert!(std::mem::size_of::<ParkedConn>() <= 96);
    h.conn = parked.resume();
    assert_eq!(h.conn.poll_timeout(), Some(idle_until));
    assert!(h.events().is_empty());
    // The next request is served as before.
    h.client_sends(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    let again = h.client_gets();
    assert_eq!(again.lines().next(), first.lines().next());
    assert!(first.starts_with("HTTP/1.1 404"), "{first}");
    // A parked connection resumed at its deadline closes.
    h.advance(Duration::from_secs(2));
    h.conn = h.conn.park().expect("parks again").resume();
    h.advance(Duration::from_secs(59));
    assert!(h.events().iter().any(is_close));
}

#[test]
fn a_connection_mid_request_does_not_park() {
    let mut h = Harness::new();
    h.advance(Duration::from_secs(2));
    h.client_sends(b"GET /nope HTTP/1.1\r\nHo");
    h.advance(Duration::from_secs(2));
    assert!(!h.conn.can_park());
    assert!(h.conn.park().is_none());
}

#[test]
fn api_not_offered_over_http_is_not_found_there() {
    let config = KEYED.replace(
        r#"{"id": "a", "path": "a","#,
        r#"{"id": "a", "path": "a", "protocols": ["https"],"#,
    );
    assert_ne!(config, KEYED, "the replacement did not apply");
    let snapshot = Snapshot::from_json(config.as_bytes()).expect("parses");
    let compiled = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let now = Instant::now();
    let mut conn = ProxyConn::new(
        settings_with(Limits::default(), Some(compiled)),
        "::1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    conn.handle_client_data(
        b"GET /a/x HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: 0123456789abcdef-all-1\r\n\r\n",
        now,
    );
    assert!(conn.client_pending().starts_with(b"HTTP/1.1 404"));
    assert!(conn.poll_event().is_none());
}

#[test]
fn heads_sent_a_byte_at_a_time_in_both_directions() {
    let mut h = Harness::new();
    let req = b"GET /users/1 HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: a\r\n\r\n";
    for b in req.iter() {
        h.client_sends(std::slice::from_ref(b));
    }
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    let sent = h.upstream_gets();
    assert!(sent.starts_with("GET /api/1 HTTP/1.1\r\n"), "{sent}");
    assert!(sent.contains("X-Long: 0123456789\r\n"), "{sent}");
    let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    for b in resp.iter() {
        h.upstream_sends(std::slice::from_ref(b));
    }
    let got = h.client_gets();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    // The pipelined request, parsed from what was left in the buffer.
    h.events();
    h.conn.handle_upstream_connected(true, h.now);
    assert!(h.upstream_gets().starts_with("GET /api/2 "));
}

#[test]
fn a_bad_head_in_pieces_gets_400_at_its_end_or_at_end_of_stream() {
    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n");
    h.client_sends(b"X\r: b\r\n");
    h.client_sends(b"\r\n");
    assert!(h.client_gets().starts_with("HTTP/1.1 400"));
    assert!(h.events().iter().any(is_close));

    let mut h = Harness::new();
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: a\r\n");
    h.client_sends(b"X\r: b");
    h.client_sends(b"");
    assert!(h.client_gets().starts_with("HTTP/1.1 400"));
}

#[test]
fn a_head_too_large_gets_431_at_the_first_byte_past_the_limit() {
    let limits = Limits {
        max_head_bytes: 1024,
        ..Limits::default()
    };
    let mut h = Harness::with_limits(limits);
    let mut head = b"GET /users/1 HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    head.resize(1024, b'x');
    for b in &head {
        h.client_sends(std::slice::from_ref(b));
    }
    assert!(h.conn.client_pending().is_empty());
    h.client_sends(b"x");
    assert!(h.client_gets().starts_with("HTTP/1.1 431"));
}

#[test]
fn underscored_fields_never_reach_the_backend() {
    let mut h = Harness::new();
    h.client_sends(
        b"GET /users/1 HTTP/1.1\r\nHost: a\r\nX_Api_Key: k\r\nContent_Length: 5\r\nX-Ok: 1\r\n\r\n",
    );
    h.expect_connect();
    h.conn.handle_upstream_connected(false, h.now);
    let sent = h.upstream_gets();
    assert!(!sent.contains('_'), "{sent}");
    assert!(sent.contains("X-Ok: 1\r\n"), "{sent}");
}
