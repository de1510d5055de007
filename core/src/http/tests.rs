//! Tests across the codec: pipelining, and properties (encode/parse round trips,
//! results independent of how the input is split, chunked round trips).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::chunked::{
    write_chunk_end, write_chunk_size, write_last_chunk, ChunkEvent, ChunkedDecoder,
};
use super::encode::{write_request_head, write_response_head};
use super::{
    BodyDecoder, BodyEvent, BodyFraming, CodecError, Limits, RequestHead, ResponseHead, Version,
};

// ---- pipelining ----

/// Reads one request (head and whole body) from `buf`.
fn read_request(buf: &mut BytesMut, limits: &Limits) -> (RequestHead, Vec<u8>, Option<Bytes>) {
    let head = RequestHead::parse(buf, limits)
        .unwrap()
        .expect("a whole head");
    let mut dec = BodyDecoder::new(
        head.framing,
        limits.max_body_bytes,
        limits.max_trailer_bytes,
    );
    let mut body = Vec::new();
    loop {
        match dec.decode(buf).unwrap().expect("a whole body") {
            BodyEvent::Data(d) => body.extend_from_slice(&d),
            BodyEvent::End { trailers } => return (head, body, trailers),
        }
    }
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let mut buf = BytesMut::from(
        &b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
           PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n\
           GET /c HTTP/1.1\r\nHost: h\r\n\r\n\
           \r\nGET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /e"[..],
    );
    let limits = Limits::default();
    let (h, body, _) = read_request(&mut buf, &limits);
    assert_eq!((h.path(), &body[..]), (&b"/a"[..], &b"hello"[..]));
    let (h, body, trailers) = read_request(&mut buf, &limits);
    assert_eq!((h.path(), &body[..]), (&b"/b"[..], &b"abc"[..]));
    assert_eq!(trailers.as_deref(), Some(&b"T: 1\r\n"[..]));
    let (h, body, _) = read_request(&mut buf, &limits);
    assert_eq!((h.path(), body.len()), (&b"/c"[..], 0));
    let (h, _, _) = read_request(&mut buf, &limits);
    assert_eq!(h.path(), b"/d");
    assert!(!h.keep_alive);
    // The fifth is not complete yet and stays in the buffer.
    assert!(RequestHead::parse(&mut buf, &limits).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /e");
}

#[test]
fn pipelined_requests_one_byte_at_a_time() {
    let input = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                  2;x=y\r\nab\r\n1\r\nc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    let whole = drive(&[&input[..]], Kind::Request, &Limits::default());
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(drive(&pieces, Kind::Request, &Limits::default()), whole);
    assert_eq!(whole.log.len(), 5, "{whole:?}");
    assert_eq!(whole.log[1], Item::Data(b"abc".to_vec()));
    assert!(whole.error.is_none());
}

// ---- a driver that reads messages the way a connection does ----

/// Request or response stream.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Request,
    Response,
}

/// What came out of a stream, with Data pieces merged so that how the input was
/// split does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Head(String),
    Data(Vec<u8>),
    End(Option<Vec<u8>>),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    log: Vec<Item>,
    error: Option<CodecError>,
    /// Unconsumed bytes (only compared when there was no error).
    leftover: Vec<u8>,
}

fn request_summary(h: &RequestHead) -> String {
    let headers: Vec<_> = h
        .header_pairs()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    format!(
        "{} {:?} {:?} {:?} {:?} {:?} ka={} ec={} eu={} {:?} raw={:?}",
        h.method,
        String::from_utf8_lossy(h.path_and_query()),
        h.authority()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        h.version,
        headers,
        h.framing,
        h.keep_alive,
        h.expect_continue,
        h.expect_unsupported,
        h.host,
        h.raw,
    )
}

fn response_summary(h: &ResponseHead) -> String {
    let headers: Vec<_> = h
        .header_pairs()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    format!(
        "{} {:?} {:?} {:?} {:?} ka={} raw={:?}",
        h.status,
        String::from_utf8_lossy(h.reason()),
        h.version,
        headers,
        h.framing,
        h.keep_alive,
        h.raw,
    )
}

/// Feeds `pieces` one after another, parsing heads and bodies until each piece is used
/// up, like a connection does; at the end of a response stream, signals EOF.
fn drive(pieces: &[&[u8]], kind: Kind, limits: &Limits) -> Outcome {
    let mut buf = BytesMut::new();
    let mut log: Vec<Item> = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let push_data = |log: &mut Vec<Item>, d: &[u8]| match log.last_mut() {
        Some(Item::Data(prev)) => prev.extend_from_slice(d),
        _ => log.push(Item::Data(d.to_vec())),
    };
    let step = |buf: &mut BytesMut,
                log: &mut Vec<Item>,
                body: &mut Option<BodyDecoder>|
     -> Result<bool, CodecError> {
        match body {
            None => {
                let parsed = match kind {
                    Kind::Request => {
                        RequestHead::parse(buf, limits)?.map(|h| (request_summary(&h), h.framing))
                    }
                    Kind::Response => ResponseHead::parse(buf, limits, &http::Method::GET)?
                        .map(|h| (response_summary(&h), h.framing)),
                };
                let Some((summary, framing)) = parsed else {
                    return Ok(false);
                };
                log.push(Item::Head(summary));
                *body = Some(BodyDecoder::new(
                    framing,
                    limits.max_body_bytes,
                    limits.max_trailer_bytes,
                ));
                Ok(true)
            }
            Some(dec) => match dec.decode(buf)? {
                None => Ok(false),
                Some(BodyEvent::Data(d)) => {
                    assert!(!d.is_empty(), "empty Data event");
                    push_data(log, &d);
                    Ok(true)
                }
                Some(BodyEvent::End { trailers }) => {
                    log.push(Item::End(trailers.map(|t| t.to_vec())));
                    *body = None;
                    Ok(true)
                }
            },
        }
    };
    let mut error = None;
    'feed: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match step(&mut buf, &mut log, &mut body) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    if let (Kind::Response, None, Some(dec)) = (kind, &error, body.as_mut()) {
        match dec.finish_on_eof() {
            Ok(BodyEvent::End { trailers }) => log.push(Item::End(trailers.map(|t| t.to_vec()))),
            Ok(BodyEvent::Data(_)) => panic!("data at EOF"),
            Err(e) => error = Some(e),
        }
    }
    if error.is_some() {
        // How much of the body came out before a limit was hit depends on the split;
        // the error itself does not.
        while matches!(log.last(), Some(Item::Data(_))) {
            log.pop();
        }
        buf.clear();
    }
    Outcome {
        log,
        error,
        leftover: buf.to_vec(),
    }
}

/// Splits `input` into pieces of the given sizes (cycled), the last taking the rest.
fn split<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if sizes.is_empty() {
            rest.len()
        } else {
            sizes[i % sizes.len()].clamp(1, rest.len())
        };
        let (a, b) = rest.split_at(n);
        pieces.push(a);
        rest = b;
        i += 1;
    }
    pieces
}

// ---- generators ----

/// A body and how it is framed.
#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked {
        data: Vec<u8>,
        sizes: Vec<usize>,
        ext: bool,
        trailers: Vec<(String, String)>,
    },
}

/// A request as the property tests generate it.
#[derive(Debug, Clone)]
struct Req {
    method: http::Method,
    target: String,
    version: Version,
    headers: Vec<(String, String)>,
    body: Body,
}

/// Names with a meaning to the parser; random fields avoid them.
fn is_special(name: &str) -> bool {
    [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "expect",
    ]
    .iter()
    .any(|s| s.eq_ignore_ascii_case(name))
}

fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_filter("special name", |n| !is_special(n))
}

fn field_value() -> impl Strategy<Value = String> {
    "([!-~]([ !-~]{0,16}[!-~])?)?"
}

fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((field_name(), field_value()), 0..6)
}

fn method() -> impl Strategy<Value = http::Method> {
    prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PURGE",
    ])
    .prop_map(|m| http::Method::from_bytes(m.as_bytes()).unwrap())
}

fn target() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9._~!$&'()*+,;=:@/%-]{0,24}(\\?[A-Za-z0-9=&%._~-]{0,12})?"
}

fn body(version: Version) -> impl Strategy<Value = Body> {
    let data = prop::collection::vec(any::<u8>(), 0..200);
    let length = data.clone().prop_map(Body::Length);
    let chunked = (
        data,
        prop::collection::vec(1usize..64, 1..6),
        any::<bool>(),
        prop::collection::vec((field_name(), field_value()), 0..3),
    )
        .prop_map(|(data, sizes, ext, trailers)| Body::Chunked {
            data,
            sizes,
            ext,
            trailers,
        });
    match version {
        // Transfer-Encoding is not allowed in HTTP/1.0.
        Version::Http10 => prop_oneof![Just(Body::None), length].boxed(),
        Version::Http11 => prop_oneof![Just(Body::None), length, chunked].boxed(),
    }
}

fn request() -> impl Strategy<Value = Req> {
    prop_oneof![Just(Version::Http10), Just(Version::Http11)]
        .prop_flat_map(|version| (method(), target(), Just(version), fields(), body(version)))
        .prop_map(|(method, target, version, headers, body)| Req {
            method,
            target,
            version,
            headers,
            body,
        })
}

/// Writes a chunked body in chunks of the given sizes (cycled).
fn write_chunked(
    data: &[u8],
    sizes: &[usize],
    ext: bool,
    trailers: &[(String, String)],
    out: &mut BytesMut,
) {
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        if ext {
            // Extensions are written by hand: the encoder never makes them.
            out.extend_from_slice(format!("{n:X} ; e{i} = \"v;{i}\"").as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            write_chunk_size(n, out);
        }
        out.extend_from_slice(&rest[..n]);
        write_chunk_end(out);
        rest = &rest[n..];
        i += 1;
    }
    let t: String = trailers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    write_last_chunk((!t.is_empty()).then_some(t.as_bytes()), out);
}

/// The header fields `encode` writes for `req`, in order.
fn written_fields(req: &Req) -> Vec<(String, String)> {
    let mut fields = vec![("Host".to_string(), "example.com".to_string())];
    fields.extend(req.headers.iter().cloned());
    match &req.body {
        Body::None => {}
        Body::Length(d) => fields.push(("Content-Length".into(), d.len().to_string())),
        Body::Chunked { .. } => fields.push(("Transfer-Encoding".into(), "chunked".into())),
    }
    fields
}

fn encode(req: &Req, out: &mut BytesMut) {
    let fields = written_fields(req);
    let refs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    write_request_head(&req.method, req.target.as_bytes(), req.version, &refs, out);
    match &req.body {
        Body::None => {}
        Body::Length(d) => out.extend_from_slice(d),
        Body::Chunked {
            data,
            sizes,
            ext,
            trailers,
        } => write_chunked(data, sizes, *ext, trailers, out),
    }
}

fn payload(req: &Req) -> &[u8] {
    match &req.body {
        Body::None => b"",
        Body::Length(d) | Body::Chunked { data: d, .. } => d,
    }
}

/// Bytes worth breaking things with.
const NASTY: &[u8] = b"\r\n \t:;,\"0aF\x00\x7f\x80=/?#@";

/// Edits applied to valid input: (position, what, byte).
fn mutations() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            prop::sample::select(NASTY.to_vec()),
        ),
        0..4,
    )
}

fn mutate(mut input: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, what, byte) in edits {
        if input.is_empty() {
            input.push(*byte);
            continue;
        }
        let i = at.index(input.len());
        match what {
            0 => input[i] = *byte,
            1 => input.insert(i, *byte),
            _ => {
                input.remove(i);
            }
        }
    }
    input
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        Just(Limits {
            max_head_bytes: 120,
            max_headers: 4,
            max_body_bytes: Some(64),
            max_trailer_bytes: 16,
        }),
    ]
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the encoder writes parses back to the same request and body.
    #[test]
    fn encoded_requests_parse_back(req in request(), sizes in prop::collection::vec(1usize..40, 0..8)) {
        let mut out = BytesMut::new();
        encode(&req, &mut out);
        let input = out.to_vec();
        let limits = Limits::default();
        let outcome = drive(&split(&input, &sizes), Kind::Request, &limits);
        prop_assert_eq!(&outcome.error, &None);
        prop_assert!(outcome.leftover.is_empty());

        let mut buf = BytesMut::from(&input[..]);
        let head = RequestHead::parse(&mut buf, &limits).unwrap().unwrap();
        prop_assert_eq!(&head.method, &req.method);
        prop_assert_eq!(head.path_and_query(), req.target.as_bytes());
        prop_assert_eq!(head.version, req.version);
        let got: Vec<(String, String)> = head
            .header_pairs()
            .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(got, written_fields(&req));
        let expected_framing = match &req.body {
            Body::None => BodyFraming::Empty,
            Body::Length(d) if d.is_empty() => BodyFraming::Empty,
            Body::Length(d) => BodyFraming::Length(d.len() as u64),
            Body::Chunked { .. } => BodyFraming::Chunked,
        };
        prop_assert_eq!(head.framing, expected_framing);

        let mut body = Vec::new();
        let mut trailers = None;
        let mut dec = BodyDecoder::new(head.framing, None, 8192);
        while let Some(ev) = dec.decode(&mut buf).unwrap() {
            match ev {
                BodyEvent::Data(d) => body.extend_from_slice(&d),
                BodyEvent::End { trailers: t } => trailers = t,
            }
        }
        prop_assert!(dec.is_done());
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&body[..], payload(&req));
        prop_assert_eq!(dec.payload_len(), body.len() as u64);
        if let Body::Chunked { trailers: sent, .. } = &req.body {
            let text: String = sent.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
            prop_assert_eq!(trailers.as_deref().unwrap_or(b""), text.as_bytes());
        }
    }

    /// Valid and damaged request streams give the same heads, bodies and errors
    /// whether they arrive at once or in pieces.
    #[test]
    fn requests_do_not_depend_on_splits(
        reqs in prop::collection::vec(request(), 1..4),
        edits in mutations(),
        sizes in prop::collection::vec(1usize..30, 1..10),
        limits in limits(),
    ) {
        let mut out = BytesMut::new();
        for req in &reqs {
            encode(req, &mut out);
        }
        let input = mutate(out.to_vec(), &edits);
        let whole = drive(&[&input[..]], Kind::Request, &limits);
        prop_assert_eq!(drive(&split(&input, &sizes), Kind::Request, &limits), whole);
    }

    /// The same for arbitrary bytes with some HTTP shape.
    #[test]
    fn noise_does_not_depend_on_splits(
        input in prop::collection::vec(prop_oneof![
            prop::sample::select(NASTY.to_vec()),
            Just(b'G'), Just(b'T'), Just(b'/'), Just(b'H'), Just(b'1'), Just(b'.'),
            any::<u8>(),
        ], 0..200),
        prefix in prop::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"]),
        sizes in prop::collection::vec(1usize..30, 1..10),
        limits in limits(),
    ) {
        let mut all = prefix.to_vec();
        all.extend_from_slice(&input);
        for kind in [Kind::Request, Kind::Response] {
            let whole = drive(&[&all[..]], kind, &limits);
            prop_assert_eq!(drive(&split(&all, &sizes), kind, &limits), whole);
        }
    }

    /// Response streams (including close-delimited bodies ended by EOF) do not depend
    /// on splits either.
    #[test]
    fn responses_do_not_depend_on_splits(
        status in prop::sample::select(vec![100u16, 200, 204, 301, 304, 404, 500, 599]),
        headers in fields(),
        framing in 0u8..4,
        data in prop::collection::vec(any::<u8>(), 0..100),
        edits in mutations(),
        sizes in prop::collection::vec(1usize..30, 1..10),
        limits in limits(),
    ) {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> =
            headers.iter().map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes())).collect();
        match framing {
            0 => fields.push((b"Content-Length".to_vec(), data.len().to_string().into_bytes())),
            1 => fields.push((b"Transfer-Encoding".to_vec(), b"chunked".to_vec())),
            2 => fields.push((b"Connection".to_vec(), b"close".to_vec())),
            _ => {}
        }
        let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let mut out = BytesMut::new();
        write_response_head(status, b"", &refs, &mut out);
        if framing == 1 {
            write_chunked(&data, &[7], false, &[], &mut out);
        } else {
            out.extend_from_slice(&data);
        }
        let input = mutate(out.to_vec(), &edits);
        let whole = drive(&[&input[..]], Kind::Response, &limits);
        prop_assert_eq!(drive(&split(&input, &sizes), Kind::Response, &limits), whole);
    }

    /// Chunked bodies in any chunk sizes, read in any pieces, decode to their data.
    #[test]
    fn chunked_round_trip(
        data in prop::collection::vec(any::<u8>(), 0..3000),
        chunk_sizes in prop::collection::vec(1usize..700, 1..8),
        ext in any::<bool>(),
        trailers in prop::collection::vec((field_name(), field_value()), 0..3),
        read_sizes in prop::collection::vec(1usize..100, 1..8),
    ) {
        let mut encoded = BytesMut::new();
        write_chunked(&data, &chunk_sizes, ext, &trailers, &mut encoded);
        encoded.extend_from_slice(b"NEXT");
        let mut dec = ChunkedDecoder::new(8192);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut end = None;
        for piece in split(&encoded, &read_sizes) {
            buf.extend_from_slice(piece);
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                match ev {
                    ChunkEvent::Data(d) => {
                        prop_assert!(!d.is_empty());
                        got.extend_from_slice(&d);
                    }
                    ChunkEvent::End(t) => end = Some(t),
                }
            }
        }
        prop_assert!(dec.is_done());
        prop_assert_eq!(got, data);
        let text: String = trailers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let end = end.unwrap();
        prop_assert_eq!(end.as_deref().unwrap_or(b""), text.as_bytes());
        prop_assert_eq!(&buf[..], b"NEXT");
    }
}
