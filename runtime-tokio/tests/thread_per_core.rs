//! The tokio adapter's sockets and the thread-per-core gateway over real
//! loopback sockets: TCP_NODELAY inherited from the listening socket, shared
//! addresses with SO_REUSEPORT, and a gateway whose second thread accepts on
//! its own listener of the same address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use portcullis_driver::{Listener, Runtime};
use portcullis_runtime_tokio::{Gateway, GatewayOptions, TokioRuntime};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn accepted_sockets_have_nodelay_from_the_listener() {
    current_thread().block_on(async {
        let listener = TokioRuntime.bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = thread::spawn(move || TcpStream::connect(addr).unwrap());
        let (stream, _) = listener.accept().await.unwrap();
        // getsockopt on the accepted socket: no setsockopt was made on it.
        assert!(stream.get_ref().get_ref().nodelay().unwrap());
        drop(client.join().unwrap());
    });
}

#[test]
fn reuse_port_listeners_share_an_address_and_plain_ones_do_not() {
    current_thread().block_on(async {
        let first = TokioRuntime.bind_reuse_port(loopback()).await.unwrap();
        let addr = first.local_addr().unwrap();
        let second = TokioRuntime.bind_reuse_port(addr).await.unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);

        let plain = TokioRuntime.bind(loopback()).await.unwrap();
        let taken = plain.local_addr().unwrap();
        assert!(TokioRuntime.bind_reuse_port(taken).await.is_err());
        assert!(TokioRuntime.bind(taken).await.is_err());
    });
}

/// A keep-alive HTTP/1.1 backend answering `ok` to every request, on threads.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    // The head, up to the empty line (GETs without bodies only).
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if writer.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One `Connection: close` request on a connection of its own; the status line
/// and the body.
fn get(addr: SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/item HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn thread_per_core_gateway_accepts_on_both_threads_and_stops() {
    let backend = backend();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    let config = serde_json::json!({
        "revision": 1,
        "apis": [{
            "id": "api",
            "displayName": "api",
            "path": "api",
            "serviceUrl": format!("http://{backend}"),
            "subscriptionRequired": false,
            "operations": [{ "id": "any", "method": "*", "urlTemplate": "/*" }]
        }]
    });
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let mut options = GatewayOptions::new(path);
    options.listen = loopback();
    options.ops_listen = None;
    options.shutdown_grace = Duration::from_secs(5);
    options.reuse_port = true;

    // The gateway's own thread, as `--thread-per-core` runs it.
    let (started_tx, started_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let main = thread::spawn(move || {
        current_thread().block_on(async move {
            let gateway = Gateway::start(options).await.unwrap();
            started_tx
                .send((gateway.local_addr(), gateway.worker()))
                .unwrap();
            let _ = stop_rx.await;
            gateway.shutdown().await;
        })
    });
    let (addr, worker) = started_rx.recv_timeout(Duration::from_secs(30)).unwrap();

    // A second thread, on its own runtime and listener.
    let (bound_tx, bound_rx) = mpsc::channel();
    let second = thread::spawn(move || {
        current_thread().block_on(async move {
            let bound = worker.bind(TokioRuntime).await.unwrap();
            bound_tx.send(()).unwrap();
            bound.serve().await
        })
    });
    bound_rx.recv_timeout(Duration::from_secs(30)).unwrap();

    const CONNS: u64 = 64;
    for _ in 0..CONNS {
        let (status, body) = get(addr);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "ok");
    }

    stop_tx.send(()).unwrap();
    main.join().unwrap();
    let on_second = second.join().unwrap();
    // The kernel spreads connections between the listeners by their addresses:
    // with 64 connections, both get some (all on one: a chance of 2^-63).
    assert!(
        on_second > 0 && on_second < CONNS,
        "the second thread accepted {on_second} of {CONNS}"
    );
    // Both listeners are closed once shutdown has returned.
    assert!(TcpStream::connect(addr).is_err());
}
