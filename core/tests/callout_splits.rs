//! The call-out exchange under random byte splits: one response (framed by a
//! length, chunked, or delimited by the connection's close; after any number
//! of interim 1xx responses) cut into random pieces must always complete the
//! same: the same status, fields, body and reuse verdict as when it arrives
//! whole. Driven as the driver does, through the machine contract: every input
//! is followed by draining `poll_output`, and the invariants are checked after
//! every step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use portcullis_core::callout::{CalloutExchange, CalloutLimits, CalloutRequest, Completed};
use portcullis_core::machine::Machine;
use proptest::prelude::*;

/// How the final response's body is framed.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length,
    /// Chunks of this size, then a trailer field when `true`.
    Chunked(usize, bool),
    /// No length: the body ends when the server closes the connection.
    Close,
}

#[derive(Debug, Clone)]
struct Case {
    interim: Vec<u16>,
    framing: Framing,
    body: Vec<u8>,
    status: u16,
}

fn case() -> impl Strategy<Value = Case> {
    let framing = prop_oneof![
        Just(Framing::Length),
        (1usize..40, any::<bool>()).prop_map(|(n, t)| Framing::Chunked(n, t)),
        Just(Framing::Close),
    ];
    (
        proptest::collection::vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..4),
        framing,
        proptest::collection::vec(any::<u8>(), 0..400),
        prop_oneof![Just(200u16), Just(201), Just(404), Just(500)],
    )
        .prop_map(|(interim, framing, body, status)| Case {
            interim,
            framing,
            body,
            status,
        })
}

fn response_bytes(case: &Case) -> Vec<u8> {
    let mut out = Vec::new();
    for code in &case.interim {
        out.extend_from_slice(format!("HTTP/1.1 {code} Interim\r\nX-Early: 1\r\n\r\n").as_bytes());
    }
    out.extend_from_slice(format!("HTTP/1.1 {} Final\r\nX-Id: 7\r\n", case.status).as_bytes());
    match case.framing {
        Framing::Length => {
            out.extend_from_slice(
                format!("Content-Length: {}\r\n\r\n", case.body.len()).as_bytes(),
            );
            out.extend_from_slice(&case.body);
        }
        Framing::Chunked(size, trailer) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in case.body.chunks(size) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            if trailer {
                out.extend_from_slice(b"X-Checksum: abc\r\n");
            }
            out.extend_from_slice(b"\r\n");
        }
        Framing::Close => {
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            out.extend_from_slice(&case.body);
        }
    }
    out
}

fn exchange() -> CalloutExchange {
    let request = CalloutRequest {
        method: "POST".into(),
        url: "http://callee.test:8080/hook".into(),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Bytes::from_static(b"ping"),
        timeout: Duration::from_secs(5),
    };
    let (_, mut ex) = request
        .prepare(CalloutLimits::default())
        .expect("a valid request");
    ex.check_invariants();
    let n = ex.pending().len();
    ex.written(n);
    ex.check_invariants();
    ex
}

/// Feeds `bytes` cut at `cuts`, then end of stream, draining the outcome after
/// every input; the one outcome there is.
fn run(bytes: &[u8], cuts: &[usize]) -> Completed {
    let mut ex = exchange();
    let mut outcomes = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for end in points {
        if end > at {
            ex.handle_input(&bytes[at..end]);
            ex.check_invariants();
            outcomes.extend(std::iter::from_fn(|| ex.poll_output()));
            at = end;
        }
    }
    ex.handle_input(b"");
    ex.check_invariants();
    outcomes.extend(std::iter::from_fn(|| ex.poll_output()));
    assert_eq!(ex.poll_timeout(), None, "no timers");
    assert!(ex.is_done());
    assert_eq!(outcomes.len(), 1, "exactly one outcome: {outcomes:?}");
    match outcomes.pop() {
        Some(Ok(done)) => done,
        other => panic!("no response: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_completes_the_same_response(
        case in case(),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let bytes = response_bytes(&case);
        let whole = run(&bytes, &[]);
        prop_assert_eq!(whole.response.status, case.status);
        prop_assert_eq!(whole.response.body.as_deref(), Some(&case.body[..]));
        prop_assert_eq!(whole.response.headers.get("X-Id"), Some("7"));
        prop_assert_eq!(whole.response.headers.get("X-Early"), None);
        prop_assert_eq!(whole.response.headers.get("Transfer-Encoding"), None);
        // End of stream after a complete framed response still counts as a
        // close: only a response that completed before it could be reused, and
        // a close-delimited one never is.
        if matches!(case.framing, Framing::Close) {
            prop_assert!(!whole.reusable);
        }
        let split = run(&bytes, &cuts);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn framed_responses_complete_before_the_close_and_may_be_reused(
        case in case().prop_filter("framed", |c| !matches!(c.framing, Framing::Close)),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let bytes = response_bytes(&case);
        let mut ex = exchange();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut at = 0;
        let mut outcomes = Vec::new();
        for end in points {
            if end > at {
                ex.handle_input(&bytes[at..end]);
                ex.check_invariants();
                outcomes.extend(std::iter::from_fn(|| ex.poll_output()));
                at = end;
            }
        }
        prop_assert_eq!(outcomes.len(), 1);
        let done = outcomes.pop().and_then(Result::ok);
        prop_assert!(done.as_ref().is_some_and(|d| d.reusable), "{:?}", done);
        // Nothing more comes out, whatever follows.
        ex.handle_input(b"HTTP/1.1 200 OK\r\n\r\n");
        ex.handle_input(b"");
        prop_assert!(ex.poll_output().is_none());
    }
}
