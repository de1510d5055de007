//! Request metrics aggregated by API, operation, product and status class.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::histogram::Histogram;

/// The status classes, in label order.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// What one finished request adds to the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation<'a> {
    /// API id; empty when none matched.
    pub api: &'a str,
    /// Operation id; empty when none matched.
    pub operation: &'a str,
    /// Product id; empty when none.
    pub product: &'a str,
    /// Status sent to the client (0: none).
    pub status: u16,
    /// Request bytes read from the client.
    pub bytes_in: u64,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// Whole request, microseconds.
    pub total_us: u64,
    /// Backend part, microseconds.
    pub backend_us: u64,
}

/// Counters and histograms of one status class of one series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Requests.
    pub requests: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Total time.
    pub total: Histogram,
    /// Backend time (requests that reached a backend).
    pub backend: Histogram,
    /// Time in the gateway.
    pub gateway: Histogram,
}

/// The metrics of one (API, operation, product).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// API id.
    pub api: String,
    /// Operation id.
    pub operation: String,
    /// Product id.
    pub product: String,
    /// Per status class, in [`STATUS_CLASSES`] order.
    pub classes: [ClassStats; 6],
}

/// Every series of a gateway: a single-threaded value (the driver shares it
/// behind its hub's lock).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    // Keyed by a hash of the labels so that a lookup borrows them: a request
    // allocates nothing once its series exists.
    series: HashMap<u64, Vec<Series>>,
}

fn key(api: &str, operation: &str, product: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    api.hash(&mut h);
    operation.hash(&mut h);
    product.hash(&mut h);
    h.finish()
}

/// The index in [`STATUS_CLASSES`] of `status`'s class.
fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

impl Metrics {
    /// Adds a finished request.
    pub fn observe(&mut self, o: &Observation<'_>) {
        let k = key(o.api, o.operation, o.product);
        let bucket = self.series.entry(k).or_default();
        let pos = bucket
            .iter()
            .position(|s| s.api == o.api && s.operation == o.operation && s.product == o.product);
        let series = match pos {
            Some(i) => &mut bucket[i],
            None => {
                bucket.push(Series {
                    api: o.api.to_string(),
                    operation: o.operation.to_string(),
                    product: o.product.to_string(),
                    classes: Default::default(),
                });
                let last = bucket.len() - 1;
                &mut bucket[last]
            }
        };
        let c = &mut series.classes[class_index(o.status)];
        c.requests += 1;
        c.bytes_in = c.bytes_in.saturating_add(o.bytes_in);
        c.bytes_out = c.bytes_out.saturating_add(o.bytes_out);
        c.total.observe(o.total_us);
        let backend = o.backend_us.min(o.total_us);
        if backend > 0 {
            c.backend.observe(backend);
        }
        c.gateway.observe(o.total_us - backend);
    }

    /// A copy of every series, sorted by labels (a stable exposition order).
    pub fn snapshot(&self) -> Vec<Series> {
        let mut all: Vec<Series> = self.series.values().flatten().cloned().collect();
        all.sort_by(|a, b| {
            (&a.api, &a.operation, &a.product).cmp(&(&b.api, &b.operation, &b.product))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_series_and_class() {
        let mut m = Metrics::default();
        let o = Observation {
            api: "echo",
            operation: "get",
            product: "starter",
            status: 200,
            bytes_in: 10,
            bytes_out: 20,
            total_us: 3_000,
            backend_us: 2_000,
        };
        m.observe(&o);
        m.observe(&o);
        m.observe(&Observation { status: 503, ..o });
        m.observe(&Observation {
            api: "",
            operation: "",
            product: "",
            status: 404,
            ..o
        });
        let s = m.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].api, "", "sorted by labels");
        assert_eq!(s[0].classes[3].requests, 1);
        let echo = &s[1];
        assert_eq!(echo.classes[1].requests, 2);
        assert_eq!(echo.classes[1].bytes_in, 20);
        assert_eq!(echo.classes[1].total.sum_us, 6_000);
        assert_eq!(echo.classes[1].backend.sum_us, 4_000);
        assert_eq!(echo.classes[1].gateway.sum_us, 2_000);
        assert_eq!(echo.classes[4].requests, 1);
    }

    #[test]
    fn status_classes_match_their_labels() {
        for status in [0u16, 99, 100, 204, 302, 404, 599, 600, 999] {
            assert_eq!(
                STATUS_CLASSES[class_index(status)],
                crate::telemetry::record::status_class(status)
            );
        }
    }

    #[test]
    fn a_request_that_never_reached_a_backend_has_no_backend_time() {
        let mut m = Metrics::default();
        m.observe(&Observation {
            status: 401,
            total_us: 50,
            ..Observation::default()
        });
        let s = m.snapshot();
        assert_eq!(s[0].classes[3].backend.count, 0);
        assert_eq!(s[0].classes[3].gateway.count, 1);
    }
}
