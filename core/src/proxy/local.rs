//! Responses the gateway makes itself, with APIM's JSON error bodies.

use bytes::BytesMut;

use crate::http::encode::write_local_response;

/// APIM's health probe path, answered 200 on the API port.
pub const STATUS_PROBE_PATH: &[u8] = b"/status-0123456789abcdef";

/// The message APIM puts in its JSON error body for a status the gateway generates.
pub fn message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        404 => "Resource not found",
        408 => "Request timeout",
        413 => "Request entity too large",
        417 => "Expectation failed",
        431 => "Request header fields too large",
        501 => "Not implemented",
        502 => "Bad gateway: the backend could not be reached or sent an invalid response",
        503 => "Service unavailable: no configuration loaded",
        504 => "Gateway timeout: the backend did not answer in time",
        505 => "HTTP version not supported",
        _ => "Error",
    }
}

/// Appends an error response `{"statusCode":N,"message":"..."}` as APIM sends it.
pub fn write_error(status: u16, close: bool, out: &mut BytesMut) {
    write_error_message(status, message(status), close, out);
}

/// Appends an error response with this message (fixed ASCII text without quotes).
pub fn write_error_message(status: u16, msg: &str, close: bool, out: &mut BytesMut) {
    let mut body = [0u8; 256];
    let len = json_error(status, msg, &mut body);
    write_local_response(
        status,
        Some("application/json; charset=utf-8"),
        &[],
        &body[..len],
        close,
        out,
    );
}

/// Formats the error body into `buf` without allocating; returns its length.
fn json_error(status: u16, msg: &str, buf: &mut [u8]) -> usize {
    use std::io::Write;
    let mut cur = std::io::Cursor::new(buf);
    // The messages are fixed ASCII without quotes, so no escaping is needed; the
    // buffer fits the longest one (checked by a test).
    let _ = write!(cur, "{{\"statusCode\":{status},\"message\":\"{msg}\"}}");
    cur.position() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_fits_the_buffer() {
        let fixed =
            [400, 404, 408, 413, 417, 431, 501, 502, 503, 504, 505, 599].map(|s| (s, message(s)));
        let keys = [
            (401, super::super::subscription::MISSING_KEY),
            (401, super::super::subscription::INVALID_KEY),
        ];
        for (status, msg) in fixed.into_iter().chain(keys) {
            let mut buf = [0u8; 256];
            let n = json_error(status, msg, &mut buf);
            let v: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("valid json");
            assert_eq!(v["statusCode"], status);
            assert_eq!(v["message"], msg);
        }
    }

    #[test]
    fn not_found_is_apims_body() {
        let mut buf = [0u8; 256];
        let n = json_error(404, message(404), &mut buf);
        assert_eq!(
            &buf[..n],
            br#"{"statusCode":404,"message":"Resource not found"}"#
        );
    }
}
