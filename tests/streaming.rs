//! Large bodies stream through the gateway in constant memory: a 1 GiB upload and a
//! 1 GiB download through the real binary, with the byte count and a running
//! checksum checked end to end and the gateway's resident memory sampled from /proc.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use common::*;
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, RequestHead, ResponseHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes moved in each direction.
const TOTAL: u64 = 1 << 30;
/// Size of the blocks the senders write.
const BLOCK: usize = 64 * 1024;
/// Resident memory the gateway may never exceed while streaming.
const MAX_RSS: u64 = 100 << 20;
/// How often (in bytes moved) the gateway's memory is sampled.
const SAMPLE_EVERY: u64 = 16 << 20;

/// Reads more bytes into `buf`; false at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> bool {
    buf.reserve(BLOCK);
    matches!(within("streaming read", stream.read_buf(buf)).await, Ok(n) if n > 0)
}

/// A backend that consumes `POST /upload` (answering the count and checksum it saw)
/// and produces `GET /download` (TOTAL bytes, chunked, the checksum in a trailer),
/// holding no more than a block of either in memory.
async fn streaming_backend() -> SocketAddr {
    let listener = TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(stream));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream) {
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(2 * BLOCK);
    loop {
        let head = loop {
            match RequestHead::parse(&mut buf, &limits) {
                Ok(Some(h)) => break h,
                Ok(None) => {
                    if !fill(&mut stream, &mut buf).await {
                        return;
                    }
                }
                Err(e) => panic!("backend: bad request head: {e}"),
            }
        };
        let mut decoder = BodyDecoder::new(head.framing, None, 1024);
        let mut sum = Checksum::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(BodyEvent::Data(d))) => sum.update(&d),
                Ok(Some(BodyEvent::End { .. })) => break,
                Ok(None) => {
                    if !fill(&mut stream, &mut buf).await {
                        panic!("backend: request body truncated after {} bytes", sum.count);
                    }
                }
                Err(e) => panic!("backend: bad request body: {e}"),
            }
        }
        match head.path() {
            b"/upload" => {
                let (count, state) = sum.finish();
                let body = format!("{{\"count\":{count},\"checksum\":\"{state:016x}\"}}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(resp.as_bytes()).await.unwrap();
            }
            b"/download" => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n")
                    .await
                    .unwrap();
                let base = base_block(BLOCK);
                let mut block = vec![0u8; BLOCK];
                let mut sent = Checksum::new();
                let size_line = format!("{BLOCK:x}\r\n");
                for i in 0..TOTAL / BLOCK as u64 {
                    fill_block(&mut block, &base, i);
                    sent.update(&block);
                    stream.write_all(size_line.as_bytes()).await.unwrap();
                    stream.write_all(&block).await.unwrap();
                    stream.write_all(b"\r\n").await.unwrap();
                }
                let (count, state) = sent.finish();
                let end = format!("0\r\nX-Checksum: {count}-{state:016x}\r\n\r\n");
                stream.write_all(end.as_bytes()).await.unwrap();
            }
            other => panic!(
                "backend: unexpected path {:?}",
                String::from_utf8_lossy(other)
            ),
        }
    }
}

/// Tracks the gateway's memory while bytes move.
struct MemoryWatch {
    pid: u32,
    next_sample: u64,
    max_rss: u64,
    samples: usize,
}

impl MemoryWatch {
    fn new(pid: u32) -> Self {
        MemoryWatch {
            pid,
            next_sample: 0,
            max_rss: 0,
            samples: 0,
        }
    }

    /// Samples VmRSS whenever another SAMPLE_EVERY bytes have moved.
    fn progress(&mut self, moved: u64) {
        if moved >= self.next_sample {
            self.next_sample = moved + SAMPLE_EVERY;
            let (rss, _) = memory_of(self.pid);
            self.samples += 1;
            self.max_rss = self.max_rss.max(rss);
            assert!(
                rss < MAX_RSS,
                "gateway resident memory {} MiB after {} MiB streamed",
                rss >> 20,
                moved >> 20
            );
        }
    }
}

#[runtimes]
async fn one_gib_each_way_in_constant_memory(rt: Runtime) {
    let backend = streaming_backend().await;
    let mut gw = GatewayProcess::start(rt, &config_for(backend), &[]).await;
    let pid = gw.pid();
    let (rss_idle, _) = memory_of(pid);
    let mut watch = MemoryWatch::new(pid);

    // Upload: Content-Length body, generated block by block.
    let started = Instant::now();
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    client
        .write_all(
            format!(
                "POST /api/upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {TOTAL}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let base = base_block(BLOCK);
    let mut block = vec![0u8; BLOCK];
    let mut sent = Checksum::new();
    for i in 0..TOTAL / BLOCK as u64 {
        fill_block(&mut block, &base, i);
        sent.update(&block);
        within("upload write", client.write_all(&block))
            .await
            .expect("upload write");
        watch.progress(sent.count);
    }
    let mut buf = BytesMut::new();
    let limits = Limits::default();
    let head = loop {
        match ResponseHead::parse(&mut buf, &limits, &axum::http::Method::POST).unwrap() {
            Some(h) => break h,
            None => assert!(fill(&mut client, &mut buf).await, "upload: no response"),
        }
    };
    assert_eq!(head.status, 200);
    let mut decoder = BodyDecoder::new(head.framing, None, 1024);
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut buf).unwrap() {
            Some(BodyEvent::Data(d)) => body.extend_from_slice(&d),
            Some(BodyEvent::End { .. }) => break,
            None => assert!(fill(&mut client, &mut buf).await, "upload: body cut"),
        }
    }
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (count, state) = sent.finish();
    assert_eq!(seen["count"], count, "backend received every byte");
    assert_eq!(
        seen["checksum"],
        format!("{state:016x}"),
        "backend received the same bytes"
    );
    let upload_time = started.elapsed();

    // Download: chunked from the backend, re-chunked by the gateway, checksum in
    // the trailer.
    let started = Instant::now();
    client
        .write_all(b"GET /api/download HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .await
        .unwrap();
    let head = loop {
        match ResponseHead::parse(&mut buf, &limits, &axum::http::Method::GET).unwrap() {
            Some(h) => break h,
            None => assert!(fill(&mut client, &mut buf).await, "download: no response"),
        }
    };
    assert_eq!(head.status, 200);
    let mut decoder = BodyDecoder::new(head.framing, None, 1024);
    let mut got = Checksum::new();
    let mut watch_down = MemoryWatch::new(pid);
    let trailers = loop {
        match decoder.decode(&mut buf).unwrap() {
            Some(BodyEvent::Data(d)) => {
                got.update(&d);
                watch_down.progress(got.count);
            }
            Some(BodyEvent::End { trailers }) => break trailers,
            None => assert!(
                fill(&mut client, &mut buf).await,
                "download cut after {} bytes",
                got.count
            ),
        }
    };
    let (count, state) = got.finish();
    assert_eq!(count, TOTAL);
    let trailers = String::from_utf8_lossy(&trailers.expect("checksum trailer")).into_owned();
    assert_eq!(
        trailers.trim_end(),
        format!("X-Checksum: {count}-{state:016x}"),
        "client received the bytes the backend sent"
    );
    let download_time = started.elapsed();

    let (_, hwm) = memory_of(pid);
    eprintln!(
        "streamed {} MiB each way: upload {upload_time:?}, download {download_time:?}; \
         gateway RSS idle {} MiB, max sampled {} MiB ({} samples), peak (VmHWM) {} MiB",
        TOTAL >> 20,
        rss_idle >> 20,
        watch.max_rss.max(watch_down.max_rss) >> 20,
        watch.samples + watch_down.samples,
        hwm >> 20
    );
    assert!(
        hwm < MAX_RSS,
        "gateway peak resident memory {} MiB",
        hwm >> 20
    );
    drop(client);
    gw.signal("TERM");
    assert!(gw.wait_exit().await.success(), "{}", gw.log_text());
}
