//! Custom metrics (`emit-metric`, `llm-emit-token-metric`) in OTLP's
//! protobuf form, for `POST {collector}/v1/metrics` (OTLP over HTTP): one
//! summary per metric (sum and count, cumulative since the gateway started),
//! a data point per dimension set, the namespace as the instrumentation
//! scope.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Metric, ResourceMetrics, ScopeMetrics, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::custom_metrics::CustomMetrics;
use crate::callout::CalloutRequest;

/// The path a collector takes metrics on.
pub const METRICS_PATH: &str = "/v1/metrics";

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The export of `metrics` from gateway `gateway`'s process `instance`,
/// counted from `start_unix_nano` to `now_unix_nano`; `None` when there is
/// nothing to export.
pub fn encode(
    metrics: &CustomMetrics,
    gateway: &str,
    instance: &str,
    start_unix_nano: u64,
    now_unix_nano: u64,
) -> Option<Vec<u8>> {
    if metrics.is_empty() {
        return None;
    }
    let mut scopes: Vec<ScopeMetrics> = Vec::new();
    for (namespace, name, labels, value) in metrics.series() {
        if scopes
            .last()
            .and_then(|s| s.scope.as_ref())
            .is_none_or(|s| s.name != namespace)
        {
            scopes.push(ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: namespace.into(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let Some(scope) = scopes.last_mut() else {
            continue;
        };
        if scope.metrics.last().is_none_or(|m| m.name != name) {
            scope.metrics.push(Metric {
                name: name.into(),
                data: Some(metric::Data::Summary(Summary::default())),
                ..Default::default()
            });
        }
        if let Some(Metric {
            data: Some(metric::Data::Summary(summary)),
            ..
        }) = scope.metrics.last_mut()
        {
            summary.data_points.push(SummaryDataPoint {
                attributes: labels.iter().map(|(k, v)| text(k, v)).collect(),
                start_time_unix_nano: start_unix_nano,
                time_unix_nano: now_unix_nano,
                count: value.count,
                sum: value.sum,
                ..Default::default()
            });
        }
    }
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "portcullis-gateway"),
                    text("service.instance.id", instance),
                    text("portcullis.gateway", gateway),
                ],
                ..Default::default()
            }),
            scope_metrics: scopes,
            ..Default::default()
        }],
    };
    Some(request.encode_to_vec())
}

/// The request that sends an encoded export (`body`) to the collector at base
/// URL `collector`, allowed `timeout`.
pub fn export_request(
    collector: &str,
    body: bytes::Bytes,
    timeout: std::time::Duration,
) -> CalloutRequest {
    super::otlp::post_request(collector, METRICS_PATH, body, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::emit_metric::MetricSample;

    #[test]
    fn metrics_become_summaries_per_namespace_that_decode_back() {
        let mut m = CustomMetrics::default();
        assert_eq!(encode(&m, "g", "i", 1, 2), None);
        for (ns, name, v, client) in [
            ("llm", "Total Tokens", 40.0, "a"),
            ("llm", "Total Tokens", 2.0, "a"),
            ("llm", "Total Tokens", 5.0, "b"),
            ("orders", "Requests", 1.0, "a"),
        ] {
            m.add(&MetricSample {
                namespace: ns.into(),
                name: name.into(),
                value: v,
                dimensions: vec![("Client".into(), client.into())],
            });
        }
        let bytes = encode(&m, "g", "i", 10, 20).expect("an export");
        let back = ExportMetricsServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let scopes = &back.resource_metrics[0].scope_metrics;
        assert_eq!(scopes.len(), 2);
        assert_eq!(
            scopes[0].scope.as_ref().map(|s| s.name.as_str()),
            Some("llm")
        );
        let total = &scopes[0].metrics[0];
        assert_eq!(total.name, "Total Tokens");
        let Some(metric::Data::Summary(s)) = &total.data else {
            panic!("a summary")
        };
        assert_eq!(s.data_points.len(), 2);
        assert_eq!((s.data_points[0].sum, s.data_points[0].count), (42.0, 2));
        assert_eq!(s.data_points[0].attributes[0].key, "client");
        assert_eq!(s.data_points[0].start_time_unix_nano, 10);
        assert_eq!(s.data_points[0].time_unix_nano, 20);
    }
}
