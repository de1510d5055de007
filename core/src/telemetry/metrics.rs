//! Request metrics aggregated by API, operation, product and status class.
//!
//! The label sets come from traffic, so they are bounded ([`SeriesLimits`]):
//! the operation label is opt-in, and at most `max_series` label sets (each
//! status class of an API, operation and product counts as one) get a series
//! of their own. Requests beyond fold into one overflow series per status
//! class, labelled [`OVERFLOW_LABEL`], and are counted as folded.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::histogram::Histogram;

/// The status classes, in label order.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The label value of the overflow series (ids hold no parentheses, so no
/// API, operation or product has it).
pub const OVERFLOW_LABEL: &str = "(other)";

/// Label sets with a series of their own by default: about 10,000 Prometheus
/// series (51 lines each) and a page of at most about 2 MB.
pub const DEFAULT_MAX_SERIES: usize = 200;

/// How many label sets the metrics keep apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Whether series are per operation too (else per API and product).
    pub operation_labels: bool,
    /// Most label sets (API, operation, product, status class) with a series
    /// of their own; requests of further ones fold into the overflow series.
    pub max_series: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            operation_labels: false,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

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

impl ClassStats {
    fn add(&mut self, o: &Observation<'_>) {
        self.requests += 1;
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.total.observe(o.total_us);
        let backend = o.backend_us.min(o.total_us);
        if backend > 0 {
            self.backend.observe(backend);
        }
        self.gateway.observe(o.total_us - backend);
    }
}

/// The metrics of one (API, operation, product).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// API id.
    pub api: String,
    /// Operation id (empty without operation labels).
    pub operation: String,
    /// Product id.
    pub product: String,
    /// Per status class, in [`STATUS_CLASSES`] order.
    pub classes: [ClassStats; 6],
}

impl Series {
    fn new(api: &str, operation: &str, product: &str) -> Self {
        Series {
            api: api.to_string(),
            operation: operation.to_string(),
            product: product.to_string(),
            classes: Default::default(),
        }
    }
}

/// A copy of the metrics for rendering, taken in steps
/// ([`Metrics::copy_into`]) so that the lock around them is held briefly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every series with its own labels, sorted by labels once finished.
    pub series: Vec<Series>,
    /// Where folded requests were counted, if any were.
    pub overflow: Option<Series>,
    /// Requests counted in the overflow series.
    pub folded: u64,
    /// Whether the series carry the operation label.
    pub operation_labels: bool,
    finished: bool,
}

impl Snapshot {
    /// Sorts the series by labels (a stable exposition order).
    fn finish(&mut self) {
        self.series.sort_by(|a, b| {
            (&a.api, &a.operation, &a.product).cmp(&(&b.api, &b.operation, &b.product))
        });
        self.finished = true;
    }
}

impl std::ops::Deref for Snapshot {
    type Target = [Series];

    fn deref(&self) -> &[Series] {
        &self.series
    }
}

/// Every series of a gateway: a single-threaded value (the driver shares it
/// behind its hub's lock).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    limits: SeriesLimits,
    /// In order of their first request; never removed, so a copy taken in
    /// steps finds each at its place.
    series: Vec<Series>,
    // Positions in `series` by a hash of the labels, so that a lookup borrows
    // them: a request allocates nothing once its series exists.
    index: HashMap<u64, Vec<usize>>,
    /// Label sets (with status class) with requests, overflow aside.
    active: usize,
    overflow: Option<Box<Series>>,
    folded: u64,
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
    /// Empty metrics bounded by `limits`.
    pub fn new(limits: SeriesLimits) -> Self {
        Metrics {
            limits,
            ..Metrics::default()
        }
    }

    /// Adds a finished request.
    pub fn observe(&mut self, o: &Observation<'_>) {
        let operation = if self.limits.operation_labels {
            o.operation
        } else {
            ""
        };
        let class = class_index(o.status);
        let k = key(o.api, operation, o.product);
        let found = self.index.get(&k).and_then(|at| {
            at.iter().copied().find(|&i| {
                let s = &self.series[i];
                s.api == o.api && s.operation == operation && s.product == o.product
            })
        });
        let room = self.active < self.limits.max_series;
        let at = match found {
            Some(i) if self.series[i].classes[class].requests > 0 => Some(i),
            Some(i) if room => {
                self.active += 1;
                Some(i)
            }
            None if room => {
                self.active += 1;
                self.series.push(Series::new(o.api, operation, o.product));
                let i = self.series.len() - 1;
                self.index.entry(k).or_default().push(i);
                Some(i)
            }
            _ => None,
        };
        match at {
            Some(i) => self.series[i].classes[class].add(o),
            None => {
                self.folded += 1;
                let overflow = self.overflow.get_or_insert_with(|| {
                    let op = if self.limits.operation_labels {
                        OVERFLOW_LABEL
                    } else {
                        ""
                    };
                    Box::new(Series::new(OVERFLOW_LABEL, op, OVERFLOW_LABEL))
                });
                overflow.classes[class].add(o);
            }
        }
    }

    /// Copies up to `max` more series into `snapshot` (started empty, or by
    /// earlier calls on these metrics); `true` once it holds them all, sorted.
    pub fn copy_into(&self, snapshot: &mut Snapshot, max: usize) -> bool {
        if snapshot.finished {
            return true;
        }
        let from = snapshot.series.len().min(self.series.len());
        let to = from.saturating_add(max).min(self.series.len());
        snapshot.series.extend_from_slice(&self.series[from..to]);
        if to < self.series.len() {
            return false;
        }
        snapshot.overflow = self.overflow.as_deref().cloned();
        snapshot.folded = self.folded;
        snapshot.operation_labels = self.limits.operation_labels;
        snapshot.finish();
        true
    }

    /// A copy of every series, sorted by labels (a stable exposition order).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.copy_into(&mut s, usize::MAX);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_series_and_class() {
        let mut m = Metrics::new(SeriesLimits {
            operation_labels: true,
            ..SeriesLimits::default()
        });
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

    fn get<'a>(api: &'a str, operation: &'a str, status: u16) -> Observation<'a> {
        Observation {
            api,
            operation,
            status,
            total_us: 1_000,
            ..Observation::default()
        }
    }

    #[test]
    fn operations_share_their_api_series_unless_asked_apart() {
        let mut m = Metrics::default();
        m.observe(&get("a", "x", 200));
        m.observe(&get("a", "y", 200));
        let s = m.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].operation, "");
        assert_eq!(s[0].classes[1].requests, 2);
        assert!(!s.operation_labels);
    }

    #[test]
    fn label_sets_beyond_the_cap_fold_into_the_overflow_series() {
        let mut m = Metrics::new(SeriesLimits {
            operation_labels: true,
            max_series: 3,
        });
        m.observe(&get("a", "x", 200));
        m.observe(&get("a", "x", 500)); // a second class: a second label set
        m.observe(&get("b", "x", 200));
        m.observe(&get("c", "x", 200)); // folded
        m.observe(&get("a", "x", 404)); // a new class of a known series: folded
        m.observe(&get("a", "x", 200)); // known: counted in its series
        m.observe(&get("b", "x", 200));
        let s = m.snapshot();
        assert_eq!(s.len(), 2, "c has no series of its own");
        assert_eq!(s[0].classes[1].requests, 2);
        assert_eq!(s[0].classes[3].requests, 0);
        assert_eq!(s.folded, 2);
        let o = s.overflow.as_ref().expect("an overflow series");
        assert_eq!(
            (o.api.as_str(), o.operation.as_str(), o.product.as_str()),
            (OVERFLOW_LABEL, OVERFLOW_LABEL, OVERFLOW_LABEL)
        );
        assert_eq!(o.classes[1].requests, 1);
        assert_eq!(o.classes[3].requests, 1);
        // Many more label sets keep the metrics' size bounded.
        for i in 0..10_000 {
            m.observe(&get(&format!("api-{i}"), "x", 200));
        }
        assert_eq!(m.series.len(), 2);
        assert_eq!(m.index.len(), 2);
        assert_eq!(m.snapshot().folded, 10_002);
    }

    #[test]
    fn a_copy_in_steps_is_the_whole_copy() {
        let mut m = Metrics::new(SeriesLimits {
            operation_labels: true,
            max_series: 50,
        });
        for i in (0..60).rev() {
            m.observe(&get(&format!("api-{i:02}"), "x", 200));
        }
        let mut steps = Snapshot::default();
        let mut calls = 0;
        while !m.copy_into(&mut steps, 7) {
            calls += 1;
            // Traffic between steps: known series only change their counts.
            m.observe(&get("api-59", "x", 200));
        }
        assert_eq!(calls, 7, "50 series, 7 at a time");
        assert_eq!(steps.len(), 50);
        assert!(steps.windows(2).all(|w| w[0].api < w[1].api), "sorted");
        assert_eq!(steps.folded, 10);
        assert!(m.copy_into(&mut steps, 7), "finished stays finished");
    }
}
