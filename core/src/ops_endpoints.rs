//! Answers of the operations endpoints (`/healthz`, `/readyz`, `/metrics`).

use crate::telemetry::prometheus;

/// Status and body for a request to the operations port; `ready` when a configuration
/// is loaded and requests can be served.
pub fn ops_response(path: &[u8], ready: bool) -> (u16, &'static str) {
    match path {
        b"/healthz" => (200, "ok\n"),
        b"/readyz" if ready => (200, "ready\n"),
        b"/readyz" => (503, "not ready: no configuration loaded\n"),
        _ => (404, "not found\n"),
    }
}

/// Answers what was read so far of a request to the operations port: `None`
/// while the head is incomplete, else the whole response (the adapter writes it
/// and closes: probes need no keep-alive). `/metrics` is the Prometheus
/// exposition `metrics` renders (called for that path only); `revision` is the configuration in force, if
/// one is loaded (readiness). `scan` is kept by the adapter beside `buf`, so a
/// head arriving a byte at a time is not re-parsed on every read.
pub fn respond(
    buf: &mut bytes::BytesMut,
    scan: &mut crate::http::HeadScanner,
    revision: Option<u64>,
    metrics: impl FnOnce() -> String,
) -> Option<bytes::BytesMut> {
    use crate::http::encode::write_local_response;
    use crate::http::Limits;
    let mut out = bytes::BytesMut::new();
    match scan.parse_request(buf, &Limits::default(), false) {
        Ok(None) => return None,
        Ok(Some(head)) if head.path() == b"/metrics" => {
            let body = metrics();
            write_local_response(
                200,
                Some(prometheus::CONTENT_TYPE),
                &[],
                body.as_bytes(),
                true,
                &mut out,
            );
        }
        Ok(Some(head)) => {
            let (status, body) = ops_response(head.path(), revision.is_some());
            write_local_response(
                status,
                Some("text/plain"),
                &[],
                body.as_bytes(),
                true,
                &mut out,
            );
        }
        Err(err) => write_local_response(err.status(), None, &[], b"", true, &mut out),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HeadScanner;

    #[test]
    fn health_and_readiness() {
        assert_eq!(ops_response(b"/healthz", false).0, 200);
        assert_eq!(ops_response(b"/readyz", true).0, 200);
        assert_eq!(ops_response(b"/readyz", false).0, 503);
        assert_eq!(ops_response(b"/metrics", true).0, 404);
    }

    #[test]
    fn responds_once_the_head_is_complete() {
        let telemetry = || {
            prometheus::render(
                &crate::telemetry::metrics::Snapshot::default(),
                &prometheus::GatewayGauges {
                    revision: None,
                    ready: false,
                    dropped_queue: 0,
                    dropped_buffer: 0,
                    token: None,
                    tls: None,
                    store: None,
                },
            )
        };
        let mut buf = bytes::BytesMut::from(&b"GET /readyz HTTP/1.1\r\n"[..]);
        assert!(respond(&mut buf, &mut HeadScanner::new(), None, telemetry).is_none());
        buf.extend_from_slice(b"Host: x\r\n\r\n");
        let out = respond(&mut buf, &mut HeadScanner::new(), None, telemetry).expect("a response");
        assert!(out.starts_with(b"HTTP/1.1 503 "), "{out:?}");
        let mut bad = bytes::BytesMut::from(&b"GET /readyz HTTP/1.1\r\nHost: x\r\n y\r\n\r\n"[..]);
        let out = respond(&mut bad, &mut HeadScanner::new(), None, telemetry).expect("a response");
        assert!(out.starts_with(b"HTTP/1.1 400 "), "{out:?}");
        let mut metrics = bytes::BytesMut::from(&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let out =
            respond(&mut metrics, &mut HeadScanner::new(), None, telemetry).expect("a response");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert!(text.contains("text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("portcullis_ready 0\n"), "{text}");
    }
}
