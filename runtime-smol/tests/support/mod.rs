//! Helpers of the smol adapter's tests: a recording backend and a client on raw
//! loopback sockets, parsing with the core's codec. Every wait has a hang guard.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, RequestHead, ResponseHead};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Async;

/// The hang guard of every wait.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs `fut` with the hang guard; panics with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(WAIT).await;
        None
    })
    .await
    .unwrap_or_else(|| panic!("timed out after {WAIT:?}: {what}"))
}

pub async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

/// Polls `check` every 10 ms until it holds (hang guard).
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Writes `bytes` to `path` atomically (temporary file, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp file");
    std::io::Write::write_all(&mut tmp, bytes).expect("write");
    tmp.as_file().sync_all().expect("sync");
    tmp.persist(path).expect("rename");
}

// ---------------------------------------------------------------------------
// A request as the backend received it
// ---------------------------------------------------------------------------

/// One request as a server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn fill(stream: &mut Async<TcpStream>, buf: &mut BytesMut) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Reads one request (any framing); `None` at end of stream.
pub async fn read_request(stream: &mut Async<TcpStream>, buf: &mut BytesMut) -> Option<Request> {
    let head = loop {
        match RequestHead::parse(buf, &Limits::default()) {
            Ok(Some(head)) => break head,
            Ok(None) => {
                if !fill(stream, buf).await {
                    return None;
                }
            }
            Err(e) => panic!("bad request from the gateway: {e}"),
        }
    };
    let chunked = head.framing == portcullis_core::http::BodyFraming::Chunked;
    let mut decoder = BodyDecoder::new(head.framing, None, 64 * 1024);
    let mut body = Vec::new();
    loop {
        match decoder.decode(buf).expect("valid body") {
            Some(BodyEvent::Data(d)) => body.extend_from_slice(&d),
            Some(BodyEvent::End { .. }) => break,
            None => {
                if !fill(stream, buf).await {
                    return None;
                }
            }
        }
    }
    Some(Request {
        method: head.method.to_string(),
        target: String::from_utf8_lossy(head.path_and_query()).into_owned(),
        headers: head
            .header_pairs()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
        body,
        chunked,
    })
}

/// A response with a Content-Length body and these header fields.
pub fn response(status: u16, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// The backend: echoes what it received
// ---------------------------------------------------------------------------

/// A backend that answers every request with its body, its method and target in
/// `X-Method` / `X-Target`, and records the requests and connections it saw.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub connections: Arc<Mutex<usize>>,
}

impl Backend {
    pub fn start() -> Backend {
        Backend::start_with_delay(Duration::ZERO)
    }

    /// A backend that waits `delay` before each answer.
    pub fn start_with_delay(delay: Duration) -> Backend {
        let listener = Async::<TcpListener>::bind(any_port()).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (reqs, conns) = (requests.clone(), connections.clone());
        smol::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                *conns.lock().unwrap() += 1;
                let reqs = reqs.clone();
                smol::spawn(async move {
                    let mut buf = BytesMut::new();
                    while let Some(req) = read_request(&mut stream, &mut buf).await {
                        if !delay.is_zero() {
                            sleep(delay).await;
                        }
                        let out = response(
                            200,
                            &[
                                ("X-Method", req.method.clone()),
                                ("X-Target", req.target.clone()),
                            ],
                            &req.body,
                        );
                        reqs.lock().unwrap().push(req);
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        Backend {
            addr,
            requests,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// A response as the client read it.
#[derive(Debug)]
pub struct Answer {
    pub head: ResponseHead,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection.
pub struct Client {
    pub stream: Async<TcpStream>,
    buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = within("connect", Async::<TcpStream>::connect(addr))
            .await
            .expect("connect");
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
    }

    /// Reads one response to a request with `method`.
    pub async fn read(&mut self, method: &http::Method) -> Answer {
        within("response", async {
            let head = loop {
                match ResponseHead::parse(&mut self.buf, &Limits::default(), method) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {
                        assert!(
                            fill(&mut self.stream, &mut self.buf).await,
                            "closed before a response head"
                        );
                    }
                    Err(e) => panic!("bad response: {e}"),
                }
            };
            let mut decoder = BodyDecoder::new(head.framing, None, 64 * 1024);
            let mut body = Vec::new();
            let mut eof = false;
            loop {
                let step = match decoder.decode(&mut self.buf) {
                    Ok(None) if eof => Some(decoder.finish_on_eof()),
                    Ok(None) => None,
                    Ok(Some(ev)) => Some(Ok(ev)),
                    Err(e) => Some(Err(e)),
                };
                match step {
                    None => eof = !fill(&mut self.stream, &mut self.buf).await,
                    Some(Ok(BodyEvent::Data(d))) => body.extend_from_slice(&d),
                    Some(Ok(BodyEvent::End { .. })) => break,
                    Some(Err(e)) => panic!("bad response body: {e}"),
                }
            }
            Answer {
                status: head.status,
                head,
                body,
            }
        })
        .await
    }

    /// `GET path` on this connection (kept alive).
    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes())
            .await;
        self.read(&http::Method::GET).await
    }

    /// Whether the server closed the connection (reads end of stream).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            within("end of stream", self.stream.read(&mut byte)).await,
            Ok(0) | Err(_)
        )
    }
}

/// `GET path` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    Client::connect(addr).await.get(path).await
}
