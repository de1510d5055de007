//! The Prometheus text exposition of the gateway's metrics (`/metrics`).
//!
//! Names (every series has the labels `api`, `operation`, `product` and
//! `status_class`; an empty value means none matched):
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
//! and, without those labels, [`GatewayGauges`]: `portcullis_config_revision`,
//! `portcullis_ready`, `portcullis_telemetry_records_dropped_total{reason}`, and in
//! connected mode `portcullis_gateway_token_expiry_seconds` (the Unix expiry of the
//! token in use), `portcullis_gateway_token_refusals_total{reason}` (`expired`,
//! `bad_signature`, `unknown_gateway`, `other`) and
//! `portcullis_gateway_token_renewals_total`; with an HTTPS listener,
//! `portcullis_tls_handshakes_total{kind}` (`full`, `resumed`) and
//! `portcullis_tls_handshake_failures_total{reason}` (see [`TlsFailure`]).

use std::fmt::Write;

use super::histogram::Histogram;
use super::metrics::{Series, STATUS_CLASSES};
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

/// Writes a label value with Prometheus' escapes.
fn escaped(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn labels(out: &mut String, s: &Series, class: &str) {
    out.push_str("{api=\"");
    escaped(out, &s.api);
    out.push_str("\",operation=\"");
    escaped(out, &s.operation);
    out.push_str("\",product=\"");
    escaped(out, &s.product);
    out.push_str("\",status_class=\"");
    out.push_str(class);
    out.push('"');
}

fn seconds(us: u64) -> String {
    // Exact decimal, no float rounding: micros as seconds.
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn counter(
    out: &mut String,
    series: &[Series],
    name: &str,
    help: &str,
    get: fn(&super::metrics::ClassStats) -> u64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for s in series {
        for (class, stats) in STATUS_CLASSES.iter().zip(&s.classes) {
            if stats.requests == 0 {
                continue;
            }
            out.push_str(name);
            labels(out, s, class);
            let _ = writeln!(out, "}} {}", get(stats));
        }
    }
}

fn histogram(
    out: &mut String,
    series: &[Series],
    name: &str,
    help: &str,
    get: fn(&super::metrics::ClassStats) -> &Histogram,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for s in series {
        for (class, stats) in STATUS_CLASSES.iter().zip(&s.classes) {
            let h = get(stats);
            if h.count == 0 {
                continue;
            }
            for (bound, n) in h.cumulative() {
                let _ = write!(out, "{name}_bucket");
                labels(out, s, class);
                let _ = writeln!(out, ",le=\"{}\"}} {n}", seconds(bound));
            }
            let _ = write!(out, "{name}_bucket");
            labels(out, s, class);
            let _ = writeln!(out, ",le=\"+Inf\"}} {}", h.count);
            let _ = write!(out, "{name}_sum");
            labels(out, s, class);
            let _ = writeln!(out, "}} {}", seconds(h.sum_us));
            let _ = write!(out, "{name}_count");
            labels(out, s, class);
            let _ = writeln!(out, "}} {}", h.count);
        }
    }
}

/// The exposition of `series` and `gauges`.
pub fn render(series: &[Series], gauges: &GatewayGauges) -> String {
    let mut out = String::with_capacity(1024 + series.len() * 2048);
    counter(
        &mut out,
        series,
        "portcullis_requests_total",
        "Requests answered.",
        |c| c.requests,
    );
    counter(
        &mut out,
        series,
        "portcullis_request_bytes_total",
        "Request bytes read from clients.",
        |c| c.bytes_in,
    );
    counter(
        &mut out,
        series,
        "portcullis_response_bytes_total",
        "Response bytes written to clients.",
        |c| c.bytes_out,
    );
    histogram(
        &mut out,
        series,
        "portcullis_request_duration_seconds",
        "Time from the request head's arrival to the response's end.",
        |c| &c.total,
    );
    histogram(
        &mut out,
        series,
        "portcullis_backend_duration_seconds",
        "Time from asking for a backend connection to the end of the backend's response.",
        |c| &c.backend,
    );
    histogram(
        &mut out,
        series,
        "portcullis_gateway_duration_seconds",
        "Time spent in the gateway: total minus backend time.",
        |c| &c.gateway,
    );
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
        token_gauges(&mut out, token);
    }
    if let Some(store) = &gauges.store {
        store_gauges(&mut out, store);
    }
    if let Some(tls) = &gauges.tls {
        tls_gauges(&mut out, tls);
    }
    out
}

fn store_gauges(out: &mut String, s: &StoreGauges) {
    use std::fmt::Write as _;
    out.push_str("# HELP portcullis_store_call_duration_seconds Round trips to the shared-state store (Redis).\n");
    out.push_str("# TYPE portcullis_store_call_duration_seconds histogram\n");
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
    out.push_str(
        "# HELP portcullis_store_errors_total Shared-state store calls that failed, by reason.\n",
    );
    out.push_str("# TYPE portcullis_store_errors_total counter\n");
    for (reason, n) in STORE_ERROR_REASONS.iter().zip(s.errors) {
        let _ = writeln!(
            out,
            "portcullis_store_errors_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

fn tls_gauges(out: &mut String, tls: &TlsGauges) {
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

fn token_gauges(out: &mut String, token: &TokenGauges) {
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
    use crate::telemetry::metrics::{Metrics, Observation};

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let mut m = Metrics::default();
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
}
