//! Custom metrics from `emit-metric` and `llm-emit-token-metric`: what the
//! gateway keeps of their samples and how `/metrics` shows them.
//!
//! Each metric (namespace and name) keeps a sum and a count per distinct set
//! of dimensions, shown as one Prometheus summary family,
//! `portcullis_custom_metric`, labelled `namespace`, `name` and the
//! dimensions (names in snake case: `API ID` becomes `api_id`). Dimension
//! values come from requests, so their sets are bounded: at most
//! [`MAX_SERIES_PER_METRIC`] per metric and [`MAX_METRICS`] metrics; samples
//! beyond are counted in `portcullis_custom_metric_dropped_total` and the
//! first one is reported ([`Added::FirstDropped`]) for the keeper to log once.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::policy::emit_metric::MetricSample;

/// Most distinct dimension sets kept per metric.
pub const MAX_SERIES_PER_METRIC: usize = 1000;

/// Most distinct metrics (namespace, name) kept.
pub const MAX_METRICS: usize = 100;

/// What became of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Counted in its series.
    Counted,
    /// Dropped for the caps, the first time for this metric (log it).
    FirstDropped,
    /// Dropped for the caps again.
    Dropped,
}

/// Sum and count of one series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeriesValue {
    /// Sum of the values.
    pub sum: f64,
    /// Samples counted.
    pub count: u64,
}

#[derive(Debug, Clone, Default)]
struct Metric {
    series: BTreeMap<Vec<(String, String)>, SeriesValue>,
    dropped: u64,
}

/// The custom metrics kept so far.
#[derive(Debug, Clone, Default)]
pub struct CustomMetrics {
    metrics: BTreeMap<(String, String), Metric>,
    /// Samples of metrics beyond [`MAX_METRICS`].
    dropped_metrics: u64,
}

/// A dimension name as a Prometheus label name: lower case, `_` for anything
/// but letters and digits, `_` first if it would start with a digit;
/// `namespace` and `name` (the family's own labels) get a `dimension_` prefix.
pub fn label_name(dimension: &str) -> String {
    let mut out = String::with_capacity(dimension.len());
    for c in dimension.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    match out.as_str() {
        "" => "dimension".into(),
        "namespace" | "name" => format!("dimension_{out}"),
        s if s.starts_with(|c: char| c.is_ascii_digit()) => format!("_{s}"),
        _ => out,
    }
}

impl CustomMetrics {
    /// Adds a sample.
    pub fn add(&mut self, sample: &MetricSample) -> Added {
        let key = (sample.namespace.clone(), sample.name.clone());
        if !self.metrics.contains_key(&key) && self.metrics.len() >= MAX_METRICS {
            self.dropped_metrics += 1;
            return if self.dropped_metrics == 1 {
                Added::FirstDropped
            } else {
                Added::Dropped
            };
        }
        let metric = self.metrics.entry(key).or_default();
        // Labels in name order, one per label name (the first wins).
        let mut labels: Vec<(String, String)> = Vec::with_capacity(sample.dimensions.len());
        for (n, v) in &sample.dimensions {
            let n = label_name(n);
            if !labels.iter().any(|(m, _)| *m == n) {
                labels.push((n, v.clone()));
            }
        }
        labels.sort();
        let len = metric.series.len();
        match metric.series.get_mut(&labels) {
            Some(s) => {
                s.sum += sample.value;
                s.count += 1;
                Added::Counted
            }
            None if len >= MAX_SERIES_PER_METRIC => {
                metric.dropped += 1;
                if metric.dropped == 1 {
                    Added::FirstDropped
                } else {
                    Added::Dropped
                }
            }
            None => {
                metric.series.insert(
                    labels,
                    SeriesValue {
                        sum: sample.value,
                        count: 1,
                    },
                );
                Added::Counted
            }
        }
    }

    /// The series of metric `name` in `namespace` with exactly these labels
    /// (label names as [`label_name`] makes them), if counted.
    pub fn get(&self, namespace: &str, name: &str, labels: &[(&str, &str)]) -> Option<SeriesValue> {
        let metric = self
            .metrics
            .get(&(namespace.to_string(), name.to_string()))?;
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        want.sort();
        metric.series.get(&want).copied()
    }

    /// Whether no sample was kept.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Every series: namespace, name, labels (in name order) and value.
    pub fn series(&self) -> impl Iterator<Item = (&str, &str, &[(String, String)], SeriesValue)> {
        self.metrics.iter().flat_map(|((namespace, name), m)| {
            m.series
                .iter()
                .map(move |(labels, v)| (namespace.as_str(), name.as_str(), labels.as_slice(), *v))
        })
    }

    /// Writes the Prometheus exposition of the custom metrics (nothing when
    /// no policy emitted any).
    pub fn render(&self, out: &mut String) {
        if self.metrics.is_empty() && self.dropped_metrics == 0 {
            return;
        }
        out.push_str("# HELP portcullis_custom_metric Samples of emit-metric and llm-emit-token-metric policies: sum and count per metric and dimensions.\n");
        out.push_str("# TYPE portcullis_custom_metric summary\n");
        for ((namespace, name), metric) in &self.metrics {
            for (labels, v) in &metric.series {
                for (suffix, value) in
                    [("_sum", format_f64(v.sum)), ("_count", v.count.to_string())]
                {
                    out.push_str("portcullis_custom_metric");
                    out.push_str(suffix);
                    out.push_str("{namespace=\"");
                    escaped(out, namespace);
                    out.push_str("\",name=\"");
                    escaped(out, name);
                    out.push('"');
                    for (l, lv) in labels {
                        out.push(',');
                        out.push_str(l);
                        out.push_str("=\"");
                        escaped(out, lv);
                        out.push('"');
                    }
                    let _ = writeln!(out, "}} {value}");
                }
            }
        }
        out.push_str("# HELP portcullis_custom_metric_dropped_total Custom metric samples not kept: their metric had too many dimension sets, or there were too many metrics.\n");
        out.push_str("# TYPE portcullis_custom_metric_dropped_total counter\n");
        for ((namespace, name), metric) in &self.metrics {
            if metric.dropped > 0 {
                out.push_str("portcullis_custom_metric_dropped_total{namespace=\"");
                escaped(out, namespace);
                out.push_str("\",name=\"");
                escaped(out, name);
                let _ = writeln!(out, "\"}} {}", metric.dropped);
            }
        }
        if self.dropped_metrics > 0 {
            let _ = writeln!(
                out,
                "portcullis_custom_metric_dropped_total{{namespace=\"\",name=\"\"}} {}",
                self.dropped_metrics
            );
        }
    }
}

fn format_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: f64, dims: &[(&str, &str)]) -> MetricSample {
        MetricSample {
            namespace: "my-metrics".into(),
            name: name.into(),
            value,
            dimensions: dims
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    #[test]
    fn samples_sum_per_dimension_set_and_render_as_a_summary() {
        let mut m = CustomMetrics::default();
        assert_eq!(
            m.add(&sample(
                "Request",
                1.0,
                &[("API ID", "echo"), ("Client IP", "::1")]
            )),
            Added::Counted
        );
        m.add(&sample(
            "Request",
            2.5,
            &[("Client IP", "::1"), ("API ID", "echo")],
        ));
        m.add(&sample(
            "Request",
            1.0,
            &[("API ID", "other"), ("Client IP", "::1")],
        ));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("portcullis_custom_metric_sum{namespace=\"my-metrics\",name=\"Request\",api_id=\"echo\",client_ip=\"::1\"} 3.5\n"), "{out}");
        assert!(out.contains("portcullis_custom_metric_count{namespace=\"my-metrics\",name=\"Request\",api_id=\"echo\",client_ip=\"::1\"} 2\n"), "{out}");
        assert!(
            out.contains("api_id=\"other\",client_ip=\"::1\"} 1\n"),
            "{out}"
        );
        assert_eq!(label_name("2nd Name"), "_2nd_name");
        assert_eq!(label_name("name"), "dimension_name");
    }

    #[test]
    fn dimension_sets_are_capped_and_the_excess_counted() {
        let mut m = CustomMetrics::default();
        for i in 0..MAX_SERIES_PER_METRIC {
            assert_eq!(
                m.add(&sample("m", 1.0, &[("User", &i.to_string())])),
                Added::Counted
            );
        }
        assert_eq!(
            m.add(&sample("m", 1.0, &[("User", "new")])),
            Added::FirstDropped
        );
        assert_eq!(
            m.add(&sample("m", 1.0, &[("User", "newer")])),
            Added::Dropped
        );
        // Known sets still count.
        assert_eq!(m.add(&sample("m", 1.0, &[("User", "0")])), Added::Counted);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                "portcullis_custom_metric_dropped_total{namespace=\"my-metrics\",name=\"m\"} 2\n"
            ),
            "{out}"
        );
        assert!(!out.contains("user=\"new\""));
    }
}
