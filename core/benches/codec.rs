//! HTTP/1.1 codec hot paths: head parsing, chunked decoding, writing the upstream head.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use portcullis_core::http::chunked::{write_chunk_end, write_chunk_size, write_last_chunk};
use portcullis_core::http::hop::{write_upstream_request, Forwarding, OutFraming};
use portcullis_core::http::{
    BodyDecoder, BodyEvent, BodyFraming, Limits, RequestHead, ResponseHead,
};

/// A typical API request head: GET with 8 header fields, about 400 bytes.
const REQUEST: &[u8] = b"GET /api/v1/orders/12345?include=items&expand=customer HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Ocp-Apim-Subscription-Key: 0123456789abcdef0123456789abcdef\r\n\
Connection: keep-alive\r\n\
X-Request-Id: 7f9c2ba4-e88f-11ee-a506-0242ac120002\r\n\
\r\n";

/// A typical backend response head.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json; charset=utf-8\r\n\
Content-Length: 1234\r\n\
Date: Mon, 24 Nov 2025 20:00:00 GMT\r\n\
Cache-Control: no-cache\r\n\
Vary: Accept-Encoding\r\n\
X-Request-Id: 7f9c2ba4-e88f-11ee-a506-0242ac120002\r\n\
\r\n";

fn parse_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    // One read buffer reused across requests, as a connection does: each round
    // appends the bytes (the copy a socket read makes anyway) and parses them off.
    let mut buf = BytesMut::with_capacity(64 * 1024);
    g.bench_function("parse_request_400b_8_fields", |b| {
        b.iter(|| {
            buf.extend_from_slice(REQUEST);
            black_box(RequestHead::parse(&mut buf, &limits))
        })
    });
    // Raw httparse on the same bytes: what the codec's own checks cost on top.
    g.bench_function("httparse_baseline_request", |b| {
        b.iter(|| {
            let mut fields = [httparse::EMPTY_HEADER; 100];
            let mut req = httparse::Request::new(&mut fields);
            black_box(req.parse(black_box(REQUEST)).is_ok())
        })
    });
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("parse_response", |b| {
        b.iter(|| {
            buf.extend_from_slice(RESPONSE);
            black_box(ResponseHead::parse(&mut buf, &limits, &http::Method::GET))
        })
    });
    g.finish();
}

fn decode_chunked(c: &mut Criterion) {
    let payload = vec![b'x'; 64 * 1024];
    let mut encoded = BytesMut::new();
    for chunk in payload.chunks(4096) {
        write_chunk_size(chunk.len(), &mut encoded);
        encoded.extend_from_slice(chunk);
        write_chunk_end(&mut encoded);
    }
    write_last_chunk(None, &mut encoded);
    let encoded = encoded.freeze();

    let mut g = c.benchmark_group("body");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("decode_chunked_64k_in_4k_chunks", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&encoded[..]),
            |buf| {
                let mut dec = BodyDecoder::new(BodyFraming::Chunked, None, 8192);
                let mut n = 0;
                while let Ok(Some(ev)) = dec.decode(buf) {
                    match ev {
                        BodyEvent::Data(d) => n += d.len(),
                        BodyEvent::End { .. } => break,
                    }
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn write_upstream(c: &mut Criterion) {
    let head = RequestHead::parse(&mut BytesMut::from(REQUEST), &Limits::default())
        .ok()
        .flatten()
        .expect("the sample request parses");
    let fwd = Forwarding {
        client_ip: b"203.0.113.7",
        proto: b"https",
        host_override: Some(b"orders.internal:8080"),
        traceparent: None,
    };
    let mut out = BytesMut::with_capacity(1024);
    c.bench_function("write_upstream_request", |b| {
        b.iter(|| {
            out.clear();
            write_upstream_request(
                &head,
                &head.method,
                &[
                    b"/orders",
                    &head.path()[b"/api/v1/orders".len()..],
                    b"?",
                    head.query().unwrap_or(b""),
                ],
                OutFraming::None,
                &fwd,
                &mut out,
            );
            black_box(out.len())
        })
    });
}

fn config() -> Criterion {
    // Short runs: the whole bench should finish in well under a minute.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse_heads, decode_chunked, write_upstream
}
criterion_main!(benches);
