//! W3C Trace Context (`traceparent`): read from the client, and the gateway's
//! own span passed on to the backend.

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// The trace a request belongs to and the gateway's span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace (the client's, or a new one).
    pub trace_id: [u8; 16],
    /// The gateway's span for this request.
    pub span_id: [u8; 8],
    /// The client's span, when the client sent a `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub parent_id: [u8; 8],
    /// Trace flags.
    pub flags: u8,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

/// Parses a `traceparent` value as the W3C recommendation says: version 00
/// exactly, a later version by its first four fields; `None` when invalid
/// (then the request starts a new trace).
pub fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    let value = value.trim_ascii();
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = lower_hex::<1>(&value[0..2])?[0];
    if version == 0xff || (version == 0 && value.len() != TRACEPARENT_LEN) {
        return None;
    }
    if version != 0 && value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = lower_hex::<16>(&value[3..35])?;
    let parent_id = lower_hex::<8>(&value[36..52])?;
    let flags = lower_hex::<1>(&value[53..55])?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags,
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    put_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

impl SpanContext {
    /// The gateway's span for a request that carried `incoming` (or none), with
    /// fresh ids drawn by the caller: `span_id`, and `new_trace` for a new trace.
    pub fn child_of(
        incoming: Option<TraceParent>,
        new_trace: [u8; 16],
        span_id: [u8; 8],
    ) -> SpanContext {
        // An all-zero id is invalid: nudge one drawn that way.
        let mut span_id = span_id;
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        match incoming {
            Some(p) => SpanContext {
                trace_id: p.trace_id,
                span_id,
                parent_id: Some(p.parent_id),
                flags: p.flags,
            },
            None => {
                let mut trace_id = new_trace;
                if trace_id == [0; 16] {
                    trace_id[15] = 1;
                }
                SpanContext {
                    trace_id,
                    span_id,
                    parent_id: None,
                    flags: 1,
                }
            }
        }
    }

    /// The `traceparent` value that makes the gateway's span the backend's parent.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        put_hex(&self.trace_id, &mut out[3..35]);
        put_hex(&self.span_id, &mut out[36..52]);
        put_hex(&[self.flags], &mut out[53..55]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specification_example_and_rejects_bad_values() {
        let p = parse_traceparent(SAMPLE).expect("valid");
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.parent_id), "00f067aa0ba902b7");
        assert_eq!(p.flags, 1);
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let later = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            parse_traceparent(later).is_some(),
            "a later version keeps its known fields"
        );
    }

    #[test]
    fn the_gateway_span_continues_the_trace_or_starts_one() {
        let p = parse_traceparent(SAMPLE);
        let span = SpanContext::child_of(p, [9; 16], [7; 8]);
        assert_eq!(
            &span.traceparent()[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"
        );
        assert_eq!(span.parent_id, p.map(|p| p.parent_id));
        let fresh = SpanContext::child_of(None, [0; 16], [0; 8]);
        assert_eq!(fresh.parent_id, None);
        assert_ne!(fresh.trace_id, [0; 16]);
        assert_ne!(fresh.span_id, [0; 8]);
        let round = parse_traceparent(&fresh.traceparent()).expect("valid");
        assert_eq!(round.trace_id, fresh.trace_id);
    }
}
