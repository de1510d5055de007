//! HTTP/1.1 codec hot paths: head parsing, chunked decoding, writing the upstream head;
//! and the slow-client case: a large head arriving one byte per read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use portcullis_core::config::CompiledConfig;
use portcullis_core::http::chunked::{write_chunk_end, write_chunk_size, write_last_chunk};
use portcullis_core::http::hop::{write_upstream_request, Forwarding, OutFraming};
use portcullis_core::http::{
    BodyDecoder, BodyEvent, BodyFraming, HeadScanner, Limits, RequestHead, ResponseHead,
};
use portcullis_core::proxy::{ConfigSource, ConnSettings, PolicyEnv, ProxyConn, Timeouts};
#[path = "../tests/support/sink.rs"]
mod sink;

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
        upgrade: None,
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

/// A request head of exactly `size` bytes: request line, Host, then 1,000-byte
/// fields (cookie-sized, as large heads are in practice), the last one padded.
fn big_head(size: usize) -> Vec<u8> {
    let mut head = b"GET /api/v1/orders HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
    let mut i = 0;
    loop {
        let name = format!("X-Field-{i:03}: ");
        // What is left for this field's value once its line end and the final
        // empty line are written.
        let room = size - head.len() - name.len() - 4;
        // Stop with one field that fills the rest exactly (never a tiny one).
        let value = if room < 2000 {
            room
        } else {
            1000 - name.len() - 2
        };
        head.extend_from_slice(name.as_bytes());
        head.extend(std::iter::repeat_n(b'v', value));
        head.extend_from_slice(b"\r\n");
        i += 1;
        if value == room {
            break;
        }
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(head.len(), size);
    head
}

/// Limits that admit a head of `size` bytes (the default 32 KiB, or more).
fn limits_for(size: usize) -> Limits {
    Limits {
        max_head_bytes: size.max(Limits::default().max_head_bytes),
        ..Limits::default()
    }
}

/// Feeds `head` to the codec one byte at a time, parsing after every byte as the
/// connection machine does (through a `HeadScanner` since the slow-head fix;
/// `RequestHead::parse` on every byte before); the parsed head's size (0: it
/// never completed).
fn feed_bytewise(head: &[u8], limits: &Limits) -> usize {
    let mut buf = BytesMut::with_capacity(head.len());
    let mut scanner = HeadScanner::new();
    for &b in head {
        buf.extend_from_slice(&[b]);
        match scanner.parse_request(&mut buf, limits, false) {
            Ok(Some(h)) => return h.raw.len(),
            Ok(None) => {}
            Err(_) => return 0,
        }
    }
    0
}

/// No configuration: a request parsed answers 503, which is all this bench needs.
struct NoConfig;

impl ConfigSource for NoConfig {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        None
    }
}

/// A connection machine with default settings but a head limit of `max_head`.
fn conn_for(max_head: usize) -> ProxyConn {
    let settings = Arc::new(ConnSettings {
        limits: limits_for(max_head),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(NoConfig),
        policy: PolicyEnv::new("bench".into(), Some((Instant::now(), 0)), [3; 32]),
        telemetry: Arc::new(sink::Sink::default()),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(
        settings,
        "192.0.2.1",
        portcullis_core::proxy::IdSeq::default(),
        Instant::now(),
    )
}

/// A client sending a large head one byte per read: the cost must grow with the
/// head's size, not with its square.
fn slow_head(c: &mut Criterion) {
    let mut g = c.benchmark_group("slow_head");
    // Each iteration feeds tens of thousands of reads; few samples suffice.
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3));
    for kib in [16usize, 32, 64] {
        let head = big_head(kib * 1024);
        let limits = limits_for(head.len());
        assert_eq!(feed_bytewise(&head, &limits), head.len());
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(format!("codec_bytewise_{kib}k"), |b| {
            b.iter(|| black_box(feed_bytewise(black_box(&head), &limits)))
        });
    }
    // The same through the connection machine, as an adapter drives it.
    let head = big_head(32 * 1024);
    g.throughput(Throughput::Bytes(head.len() as u64));
    g.bench_function("conn_bytewise_32k", |b| {
        b.iter_batched_ref(
            || conn_for(head.len()),
            |conn| {
                let now = Instant::now();
                for &byte in &head {
                    conn.handle_client_data(&[byte], now);
                }
                // The 503 (no configuration) proves the head was parsed.
                assert!(conn.client_pending().starts_with(b"HTTP/1.1 503"));
                black_box(conn.client_pending().len())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
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
    targets = parse_heads, decode_chunked, write_upstream, slow_head
}
criterion_main!(benches);
