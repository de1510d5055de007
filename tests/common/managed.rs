//! The real binary in connected mode: a `portcullis management` process, gateways
//! connected to it, and a small client for the management REST API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;

use super::{clean_env, poll_status, within, Client, Response, Runtime, WAIT};

/// The admin token every test management plane is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Collects a child's output lines, and hands over the first that `pick` accepts.
pub(super) fn collect_lines<R>(
    reader: R,
    log: Arc<Mutex<Vec<String>>>,
    pick: impl Fn(&str) -> Option<String> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(reader).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(found) = pick(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(found);
                }
            }
            log.lock().unwrap().push(line);
        }
    });
    rx
}

/// `portcullis management` on loopback with a data directory.
pub struct ManagementProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub url: String,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ManagementProcess {
    /// Starts it on `listen` (port 0 for any) with `data_dir`, and waits until it
    /// prints its URL and answers.
    pub async fn start(listen: SocketAddr, data_dir: &Path, extra_args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--log-format")
            .arg("json")
            .arg("management")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data")
            .arg(data_dir)
            .args(extra_args)
            .env_clear()
            .envs(clean_env())
            .env("PORTCULLIS_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn portcullis management");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let url_rx = collect_lines(stdout, log.clone(), |line| {
            line.strip_prefix("MANAGEMENT_URL=").map(str::to_owned)
        });
        drop(collect_lines(stderr, log.clone(), |_| None));
        let url = match tokio::time::timeout(WAIT, url_rx).await {
            Ok(Ok(url)) => url,
            _ => panic!(
                "management did not print its URL; log: {:#?}",
                log.lock().unwrap()
            ),
        };
        let addr: SocketAddr = url
            .rsplit("//")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected MANAGEMENT_URL {url}"));
        let me = ManagementProcess {
            child,
            addr,
            url,
            data_dir: data_dir.to_owned(),
            log,
        };
        if me.url.starts_with("http://") {
            poll_status(addr, "/healthz", 200).await;
        }
        me
    }

    /// Kills it at once (SIGKILL): the outage, or a crash.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = within("management exits", self.child.wait()).await;
    }

    /// Stops it gracefully (SIGTERM) and waits until it exits.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("management still running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = within("management exits after SIGTERM", self.child.wait()).await;
        assert!(exit.as_ref().is_ok_and(|s| s.success()), "{exit:?}");
    }

    /// A request to the management API as the admin; `body` is sent as JSON
    /// unless it starts with `<` (policy XML).
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        self.call_with(method, path, body, &[]).await
    }

    /// Like [`Self::call`], with extra header lines.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        admin_call(self.addr, method, path, body, headers).await
    }

    /// `call`, asserting the status.
    pub async fn ok(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> Value {
        let r = self.call(method, path, body).await;
        assert_eq!(
            r.status,
            status,
            "{method} {path}: {}\nlog: {:#?}",
            r.body_str(),
            self.log.lock().unwrap()
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// The current revision.
    pub async fn revision(&self) -> u64 {
        self.ok("GET", "/revision", None, 200).await["revision"]
            .as_u64()
            .expect("revision number")
    }

    /// Creates gateway `id` serving `apis`, and returns a token for it.
    pub async fn gateway_with_token(&self, id: &str, apis: &[&str]) -> String {
        let body = serde_json::json!({ "location": { "name": "test lab" }, "apis": apis });
        self.ok(
            "PUT",
            &format!("/gateways/{id}"),
            Some(&body.to_string()),
            201,
        )
        .await;
        let token = self
            .ok("POST", &format!("/gateways/{id}/token"), Some("{}"), 200)
            .await;
        token["value"].as_str().expect("token value").to_owned()
    }
}

/// One request to a management plane at `addr` with the admin token, on a fresh
/// connection.
pub async fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut all = vec![("Authorization", bearer.as_str())];
    let body = body.unwrap_or("");
    if !body.is_empty() {
        let content_type = if body.trim_start().starts_with('<') {
            "application/xml"
        } else {
            "application/json"
        };
        all.push(("Content-Type", content_type));
    }
    all.extend_from_slice(headers);
    http_call(addr, method, path, &all, body).await
}

/// One request to `addr` on a fresh connection, with exactly these headers (no
/// credentials unless they are among them).
pub async fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let method: axum::http::Method = method.parse().expect("method");
    // Boxed: the tests' state machines hold many of these calls, and the test
    // thread's stack is small.
    Box::pin(async move {
        let stream = within("connect to management", TcpStream::connect(addr))
            .await
            .expect("management reachable");
        let mut client = Client::from_stream(stream);
        client.send(request).await;
        within("management answers", client.response_to(&method)).await
    })
    .await
}

/// `portcullis gateway --runtime rt` connected to a management plane.
pub struct ManagedGateway {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ManagedGateway {
    /// Starts it and waits until it listens (not until it is ready: a gateway
    /// started during an outage without a backup never is).
    pub async fn start(rt: Runtime, url: &str, token: &str, extra_args: &[&str]) -> Self {
        let mut args = vec!["--management-url", url, "--token", token];
        args.extend_from_slice(extra_args);
        let (child, addr, ops_addr, log) = super::spawn_gateway(rt, &args).await;
        ManagedGateway {
            child,
            addr,
            ops_addr,
            log,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        Box::pin(poll_status(self.ops_addr, "/readyz", 200)).await;
    }

    /// What `/readyz` answers now.
    pub async fn readyz(&self) -> u16 {
        Box::pin(super::fetch(self.ops_addr, "/readyz"))
            .await
            .status
    }

    /// `GET path` on a fresh connection to the API port.
    pub async fn get(&self, path: &str) -> Response {
        let addr = self.addr;
        let request = super::get(path);
        Box::pin(async move {
            let mut c = Client::connect(addr).await;
            c.roundtrip(request).await
        })
        .await
    }

    /// Polls `GET path` until `check` accepts the response.
    pub async fn wait_for(&self, path: &str, what: &str, check: impl Fn(&Response) -> bool) {
        within(what, async {
            loop {
                let r = self.get(path).await;
                if check(&r) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Kills it at once.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = within("gateway exits", self.child.wait()).await;
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}
