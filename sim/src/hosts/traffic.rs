//! The backend, the clients sending a steady stream of requests through the
//! gateways, and the operator changing the configuration through the management
//! API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::management::{policy, ADMIN_TOKEN, API_ID};
use super::{gateway_host, http, BACKEND_PORT, GATEWAY_PORT, MANAGEMENT, MANAGEMENT_PORT};
use crate::trace::{sim_ms, Answer, Event, Trace};

/// What the backend answers.
pub const BODY: &[u8] = b"hello";

/// How long a client waits for an answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The backend: answers every request with `hello`, keeping connections alive.
pub async fn backend() -> turmoil::Result {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), BACKEND_PORT);
    let listener = turmoil::net::TcpListener::bind(addr).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        BODY.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err()
                        || stream.write_all(BODY).await.is_err()
                    {
                        return;
                    }
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

/// The path of request `n` of the client of gateway `gw`: unique, so the
/// record the gateway uploads for it can be told from every other.
pub fn request_path(gw: usize, n: u64) -> String {
    format!("/{API_ID}/hello/c{gw}-{n}")
}

/// A client: one request a second through gateway `gw`, each answer recorded.
pub async fn client(gw: usize, trace: Trace) -> turmoil::Result {
    let host = gateway_host(gw);
    for n in 0.. {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let path = request_path(gw, n);
        let sent_ms = sim_ms();
        let answer = match tokio::time::timeout(
            CLIENT_TIMEOUT,
            http(&host, GATEWAY_PORT, "GET", &path, &[], b""),
        )
        .await
        {
            Ok(Ok((200, headers, body))) => {
                let rev = headers
                    .iter()
                    .find(|(n, _)| n == "x-rev")
                    .and_then(|(_, v)| v.parse().ok());
                match rev {
                    Some(rev) if body == BODY => Answer::Ok { rev },
                    _ => Answer::Wrong(format!(
                        "rev {rev:?}, body {:?}",
                        String::from_utf8_lossy(&body)
                    )),
                }
            }
            Ok(Ok((status, _, _))) => Answer::Status(status),
            Ok(Err(_)) | Err(_) => Answer::Failed,
        };
        trace.now(Event::Answer {
            gw,
            n,
            sent_ms,
            answer,
        });
    }
    Ok(())
}

/// The operator: at each planned moment, one configuration change through the
/// management API (the policy's `X-Rev` set to the revision it will make),
/// retried until it commits.
pub async fn operator(changes: Vec<Duration>, trace: Trace) -> turmoil::Result {
    let start = tokio::time::Instant::now();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for at in changes {
        tokio::time::sleep_until(start + at).await;
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(10), async {
                let (status, _, body) = http(
                    MANAGEMENT,
                    MANAGEMENT_PORT,
                    "GET",
                    "/revision",
                    &[("Authorization", &auth)],
                    b"",
                )
                .await
                .ok()?;
                if status != 200 {
                    return None;
                }
                let current: serde_json::Value = serde_json::from_slice(&body).ok()?;
                let next = current["revision"].as_u64()? + 1;
                let (status, _, _) = http(
                    MANAGEMENT,
                    MANAGEMENT_PORT,
                    "PUT",
                    &format!("/apis/{API_ID}/policy"),
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/xml"),
                    ],
                    policy(next).as_bytes(),
                )
                .await
                .ok()?;
                (200..300).contains(&status).then_some(next)
            })
            .await;
            if let Ok(Some(rev)) = attempt {
                trace.now(Event::Changed { rev });
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}
