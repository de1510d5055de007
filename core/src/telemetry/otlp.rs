//! Spans of requests in OTLP's protobuf form, for `POST {collector}/v1/traces`
//! (OTLP over HTTP).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::record::RequestRecord;
use crate::callout::CalloutRequest;

/// The content type of an encoded export.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// The path a collector takes traces on.
pub const TRACES_PATH: &str = "/v1/traces";

/// The request that sends an encoded export (`body`) to the collector at base
/// URL `collector`, allowed `timeout`.
pub fn export_request(
    collector: &str,
    body: bytes::Bytes,
    timeout: std::time::Duration,
) -> CalloutRequest {
    post_request(collector, TRACES_PATH, body, timeout)
}

/// The OTLP/HTTP POST of an encoded export (`body`) to `path` (a signal's
/// path, `/v1/traces` or `/v1/metrics`) of the collector at base URL
/// `collector`, allowed `timeout`.
pub fn post_request(
    collector: &str,
    path: &str,
    body: bytes::Bytes,
    timeout: std::time::Duration,
) -> CalloutRequest {
    CalloutRequest {
        method: "POST".into(),
        url: format!("{}{}", collector.trim_end_matches('/'), path),
        headers: vec![("Content-Type".into(), CONTENT_TYPE.into())],
        body,
        timeout,
    }
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(out)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// The server span of one request; `None` when the record has no trace ids.
pub fn span_of(r: &RequestRecord) -> Option<Span> {
    let trace_id = unhex::<16>(r.trace_id.as_deref()?)?;
    let span_id = unhex::<8>(r.span_id.as_deref()?)?;
    let parent = r.parent_span_id.as_deref().and_then(unhex::<8>);
    let start = u64::try_from(r.timestamp_ms)
        .unwrap_or(0)
        .saturating_mul(1_000_000);
    let name = if r.operation.is_empty() {
        r.method.clone()
    } else {
        format!("{} {}/{}", r.method, r.api, r.operation)
    };
    let mut attributes = vec![
        text("http.request.method", &r.method),
        text("url.path", &r.path),
        int("http.response.status_code", i64::from(r.status)),
        text("client.address", &r.client_ip),
        text("portcullis.request_id", &r.request_id),
        int(
            "portcullis.backend_time_us",
            i64::try_from(r.backend_us).unwrap_or(i64::MAX),
        ),
    ];
    for (key, value) in [
        ("portcullis.api", Some(&r.api).filter(|a| !a.is_empty())),
        (
            "portcullis.operation",
            Some(&r.operation).filter(|o| !o.is_empty()),
        ),
        ("portcullis.product", r.product.as_ref()),
        ("portcullis.subscription", r.subscription.as_ref()),
    ] {
        if let Some(v) = value {
            attributes.push(text(key, v));
        }
    }
    if let Some(e) = &r.error {
        attributes.push(text("error.type", &e.reason));
        attributes.push(text("portcullis.error_source", &e.source));
    }
    let failed = r.status == 0 || r.status >= 500;
    Some(Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name,
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(r.total_us.saturating_mul(1000)),
        attributes,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: r
                .error
                .as_ref()
                .map(|e| e.reason.clone())
                .unwrap_or_default(),
        }),
        ..Default::default()
    })
}

/// The export request of the spans of `records` from gateway `gateway`'s
/// process `instance`; `None` when no record has a span.
pub fn encode(records: &[RequestRecord], gateway: &str, instance: &str) -> Option<Vec<u8>> {
    let spans: Vec<Span> = records.iter().filter_map(span_of).collect();
    if spans.is_empty() {
        return None;
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "portcullis-gateway"),
                    text("service.instance.id", instance),
                    text("portcullis.gateway", gateway),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "portcullis".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Some(request.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(traced: bool) -> RequestRecord {
        let mut r: RequestRecord = serde_json::from_value(serde_json::json!({
            "timestampMs": 1_700_000_000_123i64, "requestId": "r1", "gateway": "g", "instance": "i",
            "api": "users", "operation": "get-user",
            "method": "GET", "path": "/users/1", "status": 503, "clientIp": "::1",
            "bytesIn": 0, "bytesOut": 0, "totalUs": 2500, "backendUs": 2000, "gatewayUs": 500,
            "error": {"source": "backend", "reason": "Timeout"}
        }))
        .expect("a record");
        if traced {
            r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
            r.span_id = Some("0707070707070707".into());
            r.parent_span_id = Some("00f067aa0ba902b7".into());
        }
        r
    }

    #[test]
    fn records_become_server_spans_that_decode_back() {
        assert_eq!(encode(&[record(false)], "g", "i"), None);
        let bytes = encode(&[record(true), record(false)], "g", "i").expect("a span");
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let spans = &back.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "GET users/get-user");
        assert_eq!(s.kind, span::SpanKind::Server as i32);
        assert_eq!(s.trace_id[0], 0x4b);
        assert_eq!(
            s.parent_span_id,
            vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 2_500_000);
        assert_eq!(
            s.status.as_ref().map(|st| st.code),
            Some(status::StatusCode::Error as i32)
        );
        assert!(s.attributes.iter().any(|kv| kv.key == "error.type"));
    }
}
