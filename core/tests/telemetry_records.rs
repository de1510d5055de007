//! The connection machine reports every request to telemetry: the record's
//! route, status, bytes, times and error, driven by hand with a fake clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::proxy::*;
use portcullis_core::telemetry::metrics::SeriesLimits;
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::TelemetrySettings;

#[path = "support/sink.rs"]
mod sink;
use sink::Sink;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

const CONFIG: &str = r#"{
  "revision": 3,
  "apis": [
    {
      "id": "users", "path": "users",
      "serviceUrl": "http://backend.test:9000/api",
      "operations": [
        {"id": "get-user", "method": "GET", "urlTemplate": "/{id}"}
      ]
    },
    {
      "id": "quiet", "path": "quiet", "subscriptionRequired": false,
      "serviceUrl": "http://backend.test:9000/q",
      "telemetry": {"enabled": false},
      "operations": [{"id": "any", "method": "GET", "urlTemplate": "/"}]
    },
    {
      "id": "mocked", "path": "mocked", "subscriptionRequired": false,
      "serviceUrl": "http://backend.test:9000/m",
      "operations": [{"id": "m", "method": "GET", "urlTemplate": "/"}],
      "policy": "<policies><inbound><base/><return-response><set-status code=\"418\" reason=\"Teapot\"/></return-response></inbound><backend><base/></backend><outbound><base/></outbound><on-error><base/></on-error></policies>"
    }
  ],
  "products": [{"id": "starter", "apis": ["users"]}],
  "subscriptions": [
    {"id": "sub-1", "scope": "/products/starter", "primaryKey": "key-one-1234567890", "secondaryKey": "key-two-1234567890"}
  ]
}"#;

struct Harness {
    conn: ProxyConn,
    telemetry: Arc<Sink>,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(TelemetrySettings {
            gateway: "gw-1".into(),
            instance: "inst-1".into(),
            upload: true,
            // Per operation, to show which operation a request was counted in.
            metric_series: SeriesLimits {
                operation_labels: true,
                ..SeriesLimits::default()
            },
            ..TelemetrySettings::default()
        })
    }

    fn with(telemetry: TelemetrySettings) -> Self {
        let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
        let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
        let telemetry = Arc::new(Sink::new(telemetry));
        // The fake clock: any instant, with the wall clock anchored to it.
        let now = Instant::now();
        let settings = Arc::new(ConnSettings {
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            proto: "http",
            config: Arc::new(Fixed(config)),
            policy: PolicyEnv::new("gw-1".into(), Some((now, 1_700_000_000_000)), [7; 32]),
            telemetry: telemetry.clone(),
            allow_underscores_in_headers: false,
            https_port: None,
        });
        Harness {
            conn: ProxyConn::new(
                settings,
                "192.0.2.7",
                portcullis_core::proxy::IdSeq::default(),
                now,
            ),
            telemetry,
            now,
        }
    }

    fn client_sends(&mut self, bytes: &[u8]) {
        self.conn.handle_client_data(bytes, self.now);
    }

    fn client_gets(&mut self) -> String {
        let out = self.conn.client_pending().to_vec();
        self.conn.client_written(out.len(), self.now);
        String::from_utf8(out).expect("utf-8")
    }

    fn connect(&mut self) {
        let events: Vec<Event> = std::iter::from_fn(|| self.conn.poll_event()).collect();
        assert!(
            matches!(events.as_slice(), [Event::ConnectUpstream { .. }]),
            "{events:?}"
        );
        self.conn.handle_upstream_connected(false, self.now);
        let n = self.conn.upstream_pending().len();
        self.conn.upstream_written(n, self.now);
    }

    fn records(&self) -> Vec<RequestRecord> {
        self.telemetry.take_records()
    }
}

const GET_USER: &[u8] =
    b"GET /users/42?x=1 HTTP/1.1\r\nHost: gw\r\nOcp-Apim-Subscription-Key: key-one-1234567890\r\n\r\n";

#[test]
fn a_proxied_request_has_its_route_times_and_bytes() {
    let mut h = Harness::new();
    h.client_sends(GET_USER);
    h.now += Duration::from_millis(2);
    h.connect();
    h.now += Duration::from_millis(30);
    h.conn
        .handle_upstream_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", h.now);
    h.now += Duration::from_millis(1);
    let answer = h.client_gets();
    assert!(answer.ends_with("hello"), "{answer}");
    let records = h.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.timestamp_ms, 1_700_000_000_000);
    assert_eq!(
        (r.gateway.as_str(), r.instance.as_str()),
        ("gw-1", "inst-1")
    );
    assert_eq!(
        (r.api.as_str(), r.operation.as_str()),
        ("users", "get-user")
    );
    assert_eq!(r.product.as_deref(), Some("starter"));
    assert_eq!(r.subscription.as_deref(), Some("sub-1"));
    assert!(!format!("{r:?}").contains("key-one"), "never the key");
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/users/42"));
    assert_eq!(r.status, 200);
    assert_eq!(r.client_ip, "192.0.2.7");
    assert_eq!(r.bytes_in, GET_USER.len() as u64);
    assert_eq!(r.bytes_out, answer.len() as u64);
    assert_eq!(r.total_us, 32_000, "ends when the response is complete");
    // From asking for the connection (at once, as the head was read) to the
    // response's end: waiting for the connection is backend time.
    assert_eq!(r.backend_us, 32_000);
    assert_eq!(r.gateway_us, 0);
    assert_eq!(r.error, None);
    assert_eq!(r.request_id.len(), 36, "a GUID: {}", r.request_id);
    let metrics = h.telemetry.render_metrics(Some(3));
    assert!(
        metrics.contains(
            "portcullis_requests_total{api=\"users\",operation=\"get-user\",product=\"starter\",status_class=\"2xx\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn failures_say_where_and_why() {
    let mut h = Harness::new();
    // No key, a bad key, no API, then a backend that cannot be reached.
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: gw\r\n\r\n");
    h.client_sends(b"GET /users/1 HTTP/1.1\r\nHost: gw\r\nOcp-Apim-Subscription-Key: nope\r\n\r\n");
    h.client_sends(b"GET /nothing HTTP/1.1\r\nHost: gw\r\n\r\n");
    h.client_sends(GET_USER);
    h.client_gets();
    h.now += Duration::from_millis(5);
    let events: Vec<Event> = std::iter::from_fn(|| h.conn.poll_event()).collect();
    assert!(matches!(events.as_slice(), [Event::ConnectUpstream { .. }]));
    h.conn
        .handle_upstream_failed(UpstreamFailure::ConnectFailed, h.now);
    h.client_gets();
    let got: Vec<(u16, String, String, String)> = h
        .records()
        .into_iter()
        .map(|r| {
            let e = r.error.expect("an error");
            (r.status, r.api, e.source, e.reason)
        })
        .collect();
    let want = [
        (401, "users", "subscription", "SubscriptionKeyNotFound"),
        (401, "users", "subscription", "SubscriptionKeyInvalid"),
        (404, "", "gateway", "NotFound"),
        (502, "users", "backend", "BackendConnectionFailure"),
    ];
    let want: Vec<(u16, String, String, String)> = want
        .iter()
        .map(|(s, a, src, r)| (*s, a.to_string(), src.to_string(), r.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn policy_answers_probes_and_disabled_apis() {
    let mut h = Harness::new();
    h.client_sends(b"GET /mocked/ HTTP/1.1\r\nHost: gw\r\n\r\n");
    h.client_sends(b"GET /status-0123456789abcdef HTTP/1.1\r\nHost: gw\r\n\r\n");
    h.client_sends(b"GET /quiet/ HTTP/1.1\r\nHost: gw\r\n\r\n");
    h.connect();
    h.conn
        .handle_upstream_data(b"HTTP/1.1 204 No Content\r\n\r\n", h.now);
    let answers = h.client_gets();
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 3, "{answers}");
    let records = h.records();
    assert_eq!(
        records.len(),
        1,
        "the probe is not a request, quiet is off: {records:?}"
    );
    assert_eq!(records[0].api, "mocked");
    assert_eq!(records[0].status, 418);
    assert_eq!(records[0].backend_us, 0);
    let metrics = h.telemetry.render_metrics(Some(3));
    assert!(
        metrics.contains("api=\"quiet\",operation=\"any\",product=\"\",status_class=\"2xx\"} 1"),
        "metrics count every request: {metrics}"
    );
    assert!(!metrics.contains("status-0123456789abcdef"));
}

#[test]
fn a_malformed_request_and_a_client_that_leaves_are_recorded() {
    let mut h = Harness::new();
    h.client_sends(
        b"GET /users/1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    let r = h.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 400);
    assert_eq!(
        r[0].error.as_ref().map(|e| e.reason.as_str()),
        Some("InvalidRequest")
    );

    let mut h = Harness::new();
    h.client_sends(GET_USER);
    h.connect();
    h.client_sends(b"");
    h.conn
        .handle_upstream_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal", h.now);
    h.conn.handle_upstream_data(b"", h.now);
    let r = h.records();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 200, "the head went out");
    assert_eq!(
        r[0].error.as_ref().map(|e| e.reason.as_str()),
        Some("BackendIncompleteResponse")
    );
}

#[test]
fn tracing_continues_the_clients_trace_with_the_gateways_span() {
    let mut h = Harness::with(TelemetrySettings {
        tracing: true,
        ..TelemetrySettings::default()
    });
    h.client_sends(
        b"GET /mocked/ HTTP/1.1\r\nHost: gw\r\n\r\nGET /users/1 HTTP/1.1\r\nHost: gw\r\nOcp-Apim-Subscription-Key: key-one-1234567890\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
    );
    let events: Vec<Event> = std::iter::from_fn(|| h.conn.poll_event()).collect();
    assert!(matches!(events.as_slice(), [Event::ConnectUpstream { .. }]));
    h.conn.handle_upstream_connected(false, h.now);
    let upstream = String::from_utf8(h.conn.upstream_pending().to_vec()).expect("utf-8");
    assert_eq!(upstream.matches("traceparent").count(), 1, "{upstream}");
    let records = h.records();
    assert_eq!(records.len(), 1, "the mocked request");
    assert_eq!(records[0].parent_span_id, None, "it started a trace");
    assert_eq!(records[0].trace_id.as_deref().map(str::len), Some(32));
    h.conn
        .handle_upstream_data(b"HTTP/1.1 204 No Content\r\n\r\n", h.now);
    let r = &h.records()[0];
    assert_eq!(
        r.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(r.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let span = r.span_id.as_deref().expect("a span");
    assert_ne!(span, "00f067aa0ba902b7");
    assert!(
        upstream.contains(&format!(
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01\r\n"
        )),
        "the backend's parent is the gateway's span: {upstream}"
    );
}
