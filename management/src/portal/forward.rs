//! Sending a "try it" request to a gateway over hyper's HTTP/1.1 client (TLS by
//! rustls with the Mozilla roots), within a time limit, keeping at most
//! [`MAX_RESPONSE`] bytes of the answer.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HOST, USER_AGENT};
use hyper::{HeaderMap, Method, Request, Uri};
use tokio::net::TcpStream;

use crate::http_client;

/// How long a whole console request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response body is kept and shown: 1 MiB.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The absolute URL, on a configured gateway.
    pub uri: Uri,
    /// Headers besides `Host` and `Content-Length`.
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The reason phrase of the status, if it has one.
    pub reason: &'static str,
    /// The response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, up to [`MAX_RESPONSE`] bytes.
    pub body: Bytes,
    /// Whether the body was longer and cut.
    pub truncated: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connecting, TLS or HTTP failed.
    #[error("the request to {url} failed: {reason}")]
    Failed {
        /// Where it went.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// No answer within [`TIMEOUT`].
    #[error("the gateway at {0} did not answer within {secs} s", secs = TIMEOUT.as_secs())]
    Timeout(String),
}

/// Sends `out` and reads the answer, within [`TIMEOUT`].
pub async fn send(out: Outgoing) -> Result<Answer, ForwardError> {
    let url = out.uri.to_string();
    tokio::time::timeout(TIMEOUT, exchange(out))
        .await
        .map_err(|_| ForwardError::Timeout(url))?
}

async fn exchange(out: Outgoing) -> Result<Answer, ForwardError> {
    let started = Instant::now();
    let url = out.uri.to_string();
    let failed = |reason: String| ForwardError::Failed {
        url: url.clone(),
        reason,
    };
    let (host, port, _) = http_client::target(&out.uri);
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut conn = http_client::open(&out.uri, tcp, "try-it")
        .await
        .map_err(failed)?;
    let authority = http_client::host_header(&out.uri).to_owned();
    let path = out.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = Request::builder()
        .method(out.method)
        .uri(path)
        .header(HOST, authority)
        .header(USER_AGENT, "portcullis-portal-console");
    for (name, value) in &out.headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(out.body))
        .map_err(|e| failed(e.to_string()))?;
    let result = async {
        let response = conn
            .sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = response.into_body();
        let mut kept = BytesMut::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| failed(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                let room = MAX_RESPONSE - kept.len();
                if data.len() > room {
                    kept.extend_from_slice(&data[..room]);
                    truncated = true;
                    break;
                }
                kept.extend_from_slice(&data);
            }
        }
        Ok(Answer {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or(""),
            headers,
            body: kept.freeze(),
            truncated,
            elapsed: started.elapsed(),
        })
    }
    .await;
    result
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-shot server on loopback answering with `body`; it returns what it received.
    async fn server(body: Vec<u8>) -> (Uri, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Answer: yes\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            // The client may stop reading after the cap: a failed write is fine.
            let _ = socket.write_all(&body).await;
            seen
        });
        let uri = format!("http://{addr}/api/items?x=1").parse().unwrap();
        (uri, task)
    }

    fn outgoing(uri: Uri) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert("ocp-apim-subscription-key", "k1".parse().unwrap());
        Outgoing {
            method: Method::GET,
            uri,
            headers,
            body: Bytes::new(),
        }
    }

    #[tokio::test]
    async fn sends_the_request_and_reads_the_answer() {
        let (uri, task) = server(b"hello".to_vec()).await;
        let answer = send(outgoing(uri.clone())).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"hello");
        assert!(!answer.truncated);
        assert!(answer
            .headers
            .iter()
            .any(|(n, v)| n == "x-answer" && v == "yes"));
        let seen = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(
            seen.starts_with("GET /api/items?x=1 HTTP/1.1\r\n"),
            "{seen}"
        );
        let authority = uri.authority().unwrap().as_str().to_owned();
        assert!(
            seen.to_lowercase().contains(&format!("host: {authority}")),
            "{seen}"
        );
        assert!(seen.contains("ocp-apim-subscription-key: k1"), "{seen}");
    }

    #[tokio::test]
    async fn keeps_only_the_first_mebibyte() {
        let (uri, _task) = server(vec![b'x'; MAX_RESPONSE * 2]).await;
        let answer = send(outgoing(uri)).await.unwrap();
        assert_eq!(answer.body.len(), MAX_RESPONSE);
        assert!(answer.truncated);
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let uri = format!("http://{addr}/").parse().unwrap();
        assert!(matches!(
            send(outgoing(uri)).await,
            Err(ForwardError::Failed { .. })
        ));
    }
}
