//! The Prometheus text exposition of the gateway's metrics (`/metrics`).
//!
//! Names (every series has the labels `api`, `product`, `status_class` and,
//! with operation labels on, `operation`; an empty value means none matched,
//! `(other)` the overflow series of label sets beyond the cap, see
//! [`super::metrics::SeriesLimits`]):
//!
//! | name | type | what |
//! | --- | --- | --- |
//! | `portcullis_requests_total` | counter | requests answered |
//! | `portcullis_request_bytes_total` | counter | request bytes read from clients |
//! | `portcullis_response_bytes_total` | counter | response bytes written to clients |
//! | `portcullis_request_duration_seconds` | histogram | request head in to response end |
//! | `portcullis_backend_duration_seconds` | histogram | backend connect to response end (requests that reached one) |
//! | `portcullis_gateway_duration_seconds` | histogram | total minus backend time |
//!
//! and, without those labels, `portcullis_metrics_series_folded_total` (requests
//! counted in the overflow series), [`GatewayGauges`]: `portcullis_config_revision`,
//! `portcullis_ready`, `portcullis_telemetry_records_dropped_total{reason}`, and in
//! connected mode `portcullis_gateway_token_expiry_seconds` (the Unix expiry of the
//! token in use), `portcullis_gateway_token_refusals_total{reason}` (`expired`,
//! `bad_signature`, `unknown_gateway`, `other`) and
//! `portcullis_gateway_token_renewals_total`; with an HTTPS listener,
//! `portcullis_tls_handshakes_total{kind}` (`full`, `resumed`) and
//! `portcullis_tls_handshake_failures_total{reason}` (see [`TlsFailure`]).

use std::fmt::Write;

use super::histogram::Histogram;
use super::metrics::{ClassStats, Series, Snapshot, OVERFLOW_LABEL, STATUS_CLASSES};
use crate::sync::credential::{RefusalReason, TokenGauges};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Gateway-wide values exposed next to the request series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayGauges {
    /// Revision of the configuration in force, if any.
    pub revision: Option<u64>,
    /// Whether the gateway serves (has a configuration).
    pub ready: bool,
    /// Records dropped because the in-memory queue was full.
    pub dropped_queue: u64,
    /// Records dropped because the upload buffer was full.
    pub dropped_buffer: u64,
    /// The gateway token's values, in connected mode.
    pub token: Option<TokenGauges>,
    /// The HTTPS listener's handshake counts, when there is one.
    pub tls: Option<TlsGauges>,
    /// The shared-state store's calls, when it is remote (Redis).
    pub store: Option<StoreGauges>,
}

/// Upper bounds of the store call latency buckets, in microseconds (the last
/// bucket is +Inf): finer than the request histogram, a Redis call takes
/// about a tenth of a millisecond.
pub const STORE_BOUNDS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// The reasons a store call fails, as `/metrics` labels them.
pub const STORE_ERROR_REASONS: [&str; 4] = ["timeout", "unavailable", "error", "no_external_cache"];

/// The shared-state store's call latency and failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Calls per latency bucket (not cumulative; the last is above every bound).
    pub buckets: [u64; STORE_BOUNDS_US.len() + 1],
    /// Calls answered.
    pub count: u64,
    /// Their summed latency, in microseconds.
    pub sum_us: u64,
    /// Failures, in the order of [`STORE_ERROR_REASONS`].
    pub errors: [u64; STORE_ERROR_REASONS.len()],
}

impl StoreGauges {
    /// The bucket bound below which a fraction `q` of the calls took (an
    /// upper estimate; 0 without calls).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Rounded up: the q-th call, counted from one.
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            acc += n;
            if acc >= want {
                return STORE_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }
}

/// Why a client's TLS handshake failed, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client did not finish within the header timeout.
    Timeout,
    /// The client closed or reset the connection during the handshake.
    Closed,
    /// No TLS version, cipher suite, group or ALPN protocol in common (TLS 1.0
    /// and 1.1 clients, weak suites).
    Incompatible,
    /// What arrived is not TLS (plain HTTP sent to the HTTPS port, say).
    NotTls,
    /// Anything else (a bad certificate alert from the client, say).
    Other,
}

impl TlsFailure {
    /// Every reason, in the order of [`TlsGauges::failures`].
    pub const ALL: [TlsFailure; 5] = [
        TlsFailure::Timeout,
        TlsFailure::Closed,
        TlsFailure::Incompatible,
        TlsFailure::NotTls,
        TlsFailure::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Timeout => "timeout",
            TlsFailure::Closed => "closed",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::NotTls => "not_tls",
            TlsFailure::Other => "other",
        }
    }

    /// Its index in [`TlsGauges::failures`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Handshake counts of the HTTPS listener since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsGauges {
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed (session ticket or session id).
    pub resumed: u64,
    /// Failed handshakes, by [`TlsFailure::ALL`].
    pub failures: [u64; 5],
}

/// The exposition written in chunks of about [`Page::CHUNK`] bytes, so that
/// a large page is neither one allocation nor copied as it grows.
#[derive(Debug, Default)]
pub struct Page {
    done: Vec<String>,
    current: String,
}

impl Page {
    /// Bytes after which a chunk is closed and a new one started.
    pub const CHUNK: usize = 64 * 1024;

    /// The chunks written, in order.
    pub fn into_chunks(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.done.iter().map(String::len).sum::<usize>() + self.current.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for Page {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.current.capacity() == 0 {
            self.current.reserve(Self::CHUNK + 1024);
        }
        self.current.push_str(s);
        if self.current.len() >= Self::CHUNK {
            self.done.push(std::mem::take(&mut self.current));
        }
        Ok(())
    }
}

/// Writes a label value with Prometheus' escapes.
fn escaped(out: &mut impl Write, value: &str) {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        let _ = out.write_str(&rest[..i]);
        let _ = out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[i + 1..];
    }
    let _ = out.write_str(rest);
}

fn labels(out: &mut impl Write, s: &Series, operation: bool, class: &str) {
    let _ = out.write_str("{api=\"");
    escaped(out, &s.api);
    if operation {
        let _ = out.write_str("\",operation=\"");
        escaped(out, &s.operation);
    }
    let _ = out.write_str("\",product=\"");
    escaped(out, &s.product);
    let _ = out.write_str("\",status_class=\"");
    let _ = out.write_str(class);
    let _ = out.write_char('"');
}

/// Microseconds as exact decimal seconds, no float rounding.
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The series of a snapshot in exposition order: the overflow one last.
fn all(snapshot: &Snapshot) -> impl Iterator<Item = &Series> {
    snapshot.series.iter().chain(snapshot.overflow.as_ref())
}

fn counter(
    out: &mut impl Write,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    get: fn(&ClassStats) -> u64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for s in all(snapshot) {
        for (class, stats) in STATUS_CLASSES.iter().zip(&s.classes) {
            if stats.requests == 0 {
                continue;
            }
            let _ = out.write_str(name);
            labels(out, s, snapshot.operation_labels, class);
            let _ = writeln!(out, "}} {}", get(stats));
        }
    }
}

fn histogram(
    out: &mut impl Write,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    get: fn(&ClassStats) -> &Histogram,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let op = snapshot.operation_labels;
    for s in all(snapshot) {
        for (class, stats) in STATUS_CLASSES.iter().zip(&s.classes) {
            let h = get(stats);
            if h.count == 0 {
                continue;
            }
            for (bound, n) in h.cumulative() {
                let _ = write!(out, "{name}_bucket");
                labels(out, s, op, class);
                let _ = writeln!(out, ",le=\"{}\"}} {n}", Seconds(bound));
            }
            let _ = write!(out, "{name}_bucket");
            labels(out, s, op, class);
            let _ = writeln!(out, ",le=\"+Inf\"}} {}", h.count);
            let _ = write!(out, "{name}_sum");
            labels(out, s, op, class);
            let _ = writeln!(out, "}} {}", Seconds(h.sum_us));
            let _ = write!(out, "{name}_count");
            labels(out, s, op, class);
            let _ = writeln!(out, "}} {}", h.count);
        }
    }
}

/// The exposition of `snapshot` and `gauges`.
pub fn render(snapshot: &Snapshot, gauges: &GatewayGauges) -> String {
    let mut out = String::with_capacity(1024 + snapshot.series.len() * 2048);
    render_into(&mut out, snapshot, gauges);
    out
}

/// Writes the exposition of `snapshot` and `gauges` to `out` (a [`Page`] for
/// chunks).
pub fn render_into(out: &mut impl Write, snapshot: &Snapshot, gauges: &GatewayGauges) {
    counter(
        out,
        snapshot,
        "portcullis_requests_total",
        "Requests answered.",
        |c| c.requests,
    );
    counter(
        out,
        snapshot,
        "portcullis_request_bytes_total",
        "Request bytes read from clients.",
        |c| c.bytes_in,
    );
    counter(
        out,
        snapshot,
        "portcullis_response_bytes_total",
        "Response bytes written to clients.",
        |c| c.bytes_out,
    );
    histogram(
        out,
        snapshot,
        "portcullis_request_duration_seconds",
        "Time from the request head's arrival to the response's end.",
        |c| &c.total,
    );
    histogram(
        out,
        snapshot,
        "portcullis_backend_duration_seconds",
        "Time from asking for a backend connection to the end of the backend's response.",
        |c| &c.backend,
    );
    histogram(
        out,
        snapshot,
        "portcullis_gateway_duration_seconds",
        "Time spent in the gateway: total minus backend time.",
        |c| &c.gateway,
    );
    let _ = writeln!(out, "# HELP portcullis_metrics_series_folded_total Requests counted in the overflow series (labels \"{OVERFLOW_LABEL}\") because their label set was beyond --metrics-max-series.\n# TYPE portcullis_metrics_series_folded_total counter\nportcullis_metrics_series_folded_total {}", snapshot.folded);
    let _ = writeln!(out, "# HELP portcullis_config_revision Revision of the configuration in force.\n# TYPE portcullis_config_revision gauge");
    if let Some(rev) = gauges.revision {
        let _ = writeln!(out, "portcullis_config_revision {rev}");
    }
    let _ = writeln!(out, "# HELP portcullis_ready Whether the gateway has a configuration to serve.\n# TYPE portcullis_ready gauge\nportcullis_ready {}", u8::from(gauges.ready));
    let _ = writeln!(
        out,
        "# HELP portcullis_telemetry_records_dropped_total Request records dropped before upload.\n# TYPE portcullis_telemetry_records_dropped_total counter\nportcullis_telemetry_records_dropped_total{{reason=\"queue\"}} {}\nportcullis_telemetry_records_dropped_total{{reason=\"buffer\"}} {}",
        gauges.dropped_queue, gauges.dropped_buffer
    );
    if let Some(token) = &gauges.token {
        token_gauges(out, token);
    }
    if let Some(store) = &gauges.store {
        store_gauges(out, store);
    }
    if let Some(tls) = &gauges.tls {
        tls_gauges(out, tls);
    }
}

fn store_gauges(out: &mut impl Write, s: &StoreGauges) {
    let _ = out.write_str("# HELP portcullis_store_call_duration_seconds Round trips to the shared-state store (Redis).\n");
    let _ = out.write_str("# TYPE portcullis_store_call_duration_seconds histogram\n");
    let mut acc = 0;
    for (bound, n) in STORE_BOUNDS_US.iter().zip(s.buckets) {
        acc += n;
        let _ = writeln!(
            out,
            "portcullis_store_call_duration_seconds_bucket{{le=\"{}\"}} {acc}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "portcullis_store_call_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        s.count
    );
    let _ = writeln!(
        out,
        "portcullis_store_call_duration_seconds_sum {}",
        s.sum_us as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "portcullis_store_call_duration_seconds_count {}",
        s.count
    );
    let _ = out.write_str(
        "# HELP portcullis_store_errors_total Shared-state store calls that failed, by reason.\n",
    );
    let _ = out.write_str("# TYPE portcullis_store_errors_total counter\n");
    for (reason, n) in STORE_ERROR_REASONS.iter().zip(s.errors) {
        let _ = writeln!(
            out,
            "portcullis_store_errors_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

fn tls_gauges(out: &mut impl Write, tls: &TlsGauges) {
    let _ = writeln!(
        out,
        "# HELP portcullis_tls_handshakes_total TLS handshakes completed on the HTTPS listener.\n# TYPE portcullis_tls_handshakes_total counter\nportcullis_tls_handshakes_total{{kind=\"full\"}} {}\nportcullis_tls_handshakes_total{{kind=\"resumed\"}} {}",
        tls.full, tls.resumed
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_tls_handshake_failures_total TLS handshakes on the HTTPS listener that failed.\n# TYPE portcullis_tls_handshake_failures_total counter"
    );
    for (reason, n) in TlsFailure::ALL.iter().zip(tls.failures) {
        let _ = writeln!(
            out,
            "portcullis_tls_handshake_failures_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }
}

fn token_gauges(out: &mut impl Write, token: &TokenGauges) {
    let _ = writeln!(
        out,
        "# HELP portcullis_gateway_token_expiry_seconds When the gateway token in use expires (Unix seconds).\n# TYPE portcullis_gateway_token_expiry_seconds gauge\nportcullis_gateway_token_expiry_seconds {}",
        token.expiry_unix
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_gateway_token_refusals_total Refusals of the gateway token by the management plane.\n# TYPE portcullis_gateway_token_refusals_total counter"
    );
    for (reason, n) in RefusalReason::ALL.iter().zip(token.refusals) {
        let _ = writeln!(
            out,
            "portcullis_gateway_token_refusals_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP portcullis_gateway_token_renewals_total Gateway tokens renewed since start.\n# TYPE portcullis_gateway_token_renewals_total counter\nportcullis_gateway_token_renewals_total {}",
        token.renewals
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::{Metrics, Observation, SeriesLimits, DEFAULT_MAX_SERIES};

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let mut m = Metrics::new(SeriesLimits {
            operation_labels: true,
            ..SeriesLimits::default()
        });
        m.observe(&Observation {
            api: "echo",
            operation: "get \"x\"",
            product: "",
            status: 200,
            bytes_in: 5,
            bytes_out: 7,
            total_us: 1_500,
            backend_us: 1_000,
        });
        let text = render(
            &m.snapshot(),
            &GatewayGauges {
                revision: Some(4),
                ready: true,
                dropped_queue: 0,
                dropped_buffer: 2,
                token: Some(TokenGauges {
                    expiry_unix: 1_900_000_000,
                    refusals: [3, 0, 0, 1],
                    renewals: 2,
                }),
                tls: Some(TlsGauges {
                    full: 3,
                    resumed: 5,
                    failures: [0, 0, 2, 0, 0],
                }),
                store: None,
            },
        );
        for line in [
            "portcullis_tls_handshakes_total{kind=\"full\"} 3\n",
            "portcullis_tls_handshakes_total{kind=\"resumed\"} 5\n",
            "portcullis_tls_handshake_failures_total{reason=\"incompatible\"} 2\n",
            "portcullis_tls_handshake_failures_total{reason=\"timeout\"} 0\n",
            "portcullis_gateway_token_expiry_seconds 1900000000\n",
            "portcullis_gateway_token_refusals_total{reason=\"expired\"} 3\n",
            "portcullis_gateway_token_refusals_total{reason=\"other\"} 1\n",
            "portcullis_gateway_token_renewals_total 2\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        let labels = r#"api="echo",operation="get \"x\"",product="",status_class="2xx""#;
        assert!(
            text.contains(&format!("portcullis_requests_total{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("portcullis_request_bytes_total{{{labels}}} 5\n")));
        assert!(text.contains(&format!(
            "portcullis_request_duration_seconds_bucket{{{labels},le=\"0.001000\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "portcullis_request_duration_seconds_bucket{{{labels},le=\"0.002500\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "portcullis_request_duration_seconds_sum{{{labels}}} 0.001500\n"
        )));
        assert!(text.contains(&format!(
            "portcullis_gateway_duration_seconds_count{{{labels}}} 1\n"
        )));
        assert!(text.contains("portcullis_config_revision 4\n"));
        assert!(text.contains("portcullis_ready 1\n"));
        assert!(text.contains("portcullis_telemetry_records_dropped_total{reason=\"buffer\"} 2"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// Traffic over 10,000 APIs of 10 operations each, every status class.
    fn busy(limits: SeriesLimits) -> Metrics {
        let mut m = Metrics::new(limits);
        for api in 0..10_000 {
            for op in 0..10 {
                let api = format!("api-{api:05}-with-a-longish-identifier");
                let operation = format!("operation-{op:02}");
                m.observe(&Observation {
                    api: &api,
                    operation: &operation,
                    product: "starter-product",
                    status: [200, 404, 503][op % 3],
                    bytes_in: 100,
                    bytes_out: 1_000,
                    total_us: 2_000 * op as u64,
                    backend_us: 1_000 * op as u64,
                });
            }
        }
        m
    }

    #[test]
    fn the_page_stays_bounded_however_many_apis_and_operations() {
        for operation_labels in [false, true] {
            let m = busy(SeriesLimits {
                operation_labels,
                ..SeriesLimits::default()
            });
            let snapshot = m.snapshot();
            let mut page = Page::default();
            render_into(&mut page, &snapshot, &GatewayGauges::default());
            let len = page.len();
            let chunks = page.into_chunks();
            assert!(chunks.len() > 1, "written in chunks");
            assert!(chunks.iter().all(|c| c.len() < Page::CHUNK + 1024));
            let text = chunks.concat();
            assert_eq!(text.len(), len);
            assert_eq!(text, render(&snapshot, &GatewayGauges::default()));
            assert!(len < 2_000_000, "{len} bytes");
            let series = text
                .lines()
                .filter(|l| l.starts_with("portcullis_requests_total{"))
                .count();
            assert_eq!(series, DEFAULT_MAX_SERIES + 3, "the overflow has 3 classes");
            assert!(text.contains(
                "portcullis_requests_total{api=\"(other)\",operation=\"(other)\",product=\"(other)\",status_class=\"4xx\"} "
            ) == operation_labels);
            assert!(
                text.contains("portcullis_requests_total{api=\"(other)\",product=\"(other)\",status_class=\"5xx\"} ")
                    != operation_labels
            );
            let folded: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("portcullis_metrics_series_folded_total "))
                .and_then(|n| n.parse().ok())
                .expect("the folded counter");
            let counted: u64 = text
                .lines()
                .filter(|l| l.starts_with("portcullis_requests_total{") && !l.contains("(other)"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            assert_eq!(folded + counted, 100_000, "every request counted once");
            assert_eq!(
                text.contains("operation=\"operation-01\""),
                operation_labels
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escaped(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
    }
}
