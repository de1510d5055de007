//! Socket tests of the fetch's address guard: loopback servers, refused by the
//! default policy or, for the redirect check, by port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const DOC: &str = "openapi: 3.0.3\npaths: {}\n";

/// A loopback HTTP/1.1 server: `/doc` answers [`DOC`], `/to/PORT` redirects to
/// `/doc` on 127.0.0.1:PORT; it counts the connections it accepts.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let response = if path == "/doc" {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{DOC}",
                        DOC.len()
                    )
                } else if let Some(port) = path.strip_prefix("/to/") {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/doc\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn the_default_policy_refuses_non_public_hosts_before_connecting() {
    let (addr, accepted) = server().await;
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/doc"),
        format!("http://localhost:{port}/doc"),
        format!("http://[::1]:{port}/doc"),
        format!("http://[::ffff:127.0.0.1]:{port}/doc"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "https://10.0.0.1/openapi.json".to_owned(),
        "http://0.0.0.0:1/".to_owned(),
    ] {
        match fetch(&url, 1 << 20, FetchPolicy::default()).await {
            Err(FetchError::Refused { reason, .. }) => {
                assert!(!reason.is_empty(), "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing was connected to"
    );
    let err = fetch(
        "http://169.254.169.254/latest/meta-data/",
        1 << 20,
        FetchPolicy::default(),
    )
    .await
    .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("link-local"), "{text}");
    assert!(text.contains("--openapi-fetch-private"), "{text}");

    // Allowed, the same server is fetched from.
    let lab = FetchPolicy {
        private_addresses: true,
    };
    let body = fetch(&format!("http://localhost:{port}/doc"), 1 << 20, lab)
        .await
        .expect("fetched");
    assert_eq!(body, DOC.as_bytes());
}

#[tokio::test]
async fn every_redirect_hop_is_checked_again() {
    let (first, _) = server().await;
    let (target, target_accepted) = server().await;
    let url = format!("http://{first}/to/{}", target.port());
    // The first hop is allowed, the redirect's target is not.
    let refuse_target = |addr: SocketAddr| (addr.port() == target.port()).then_some("refused here");
    match fetch_checked(&url, 1 << 20, refuse_target).await {
        Err(FetchError::Refused { url, reason, .. }) => {
            assert_eq!(reason, "refused here");
            assert!(url.contains(&target.port().to_string()), "{url}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(target_accepted.load(Ordering::SeqCst), 0);
    // With nothing refused, the redirect is followed to the document.
    let body = fetch_checked(&url, 1 << 20, |_| None)
        .await
        .expect("fetched");
    assert_eq!(body, DOC.as_bytes());
    assert_eq!(target_accepted.load(Ordering::SeqCst), 1);
}
