//! A small HTTP/1.1 client for the end-to-end tests: one connection per request,
//! plain or TLS, over hyper's client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> String {
        self.header("etag")
            .unwrap_or_else(|| panic!("no ETag on {} {}", self.status, self.text()))
            .to_owned()
    }

    /// Asserts a problem+json error with `status` and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(body["title"].is_string());
        assert!(body["detail"].is_string());
        assert!(body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://portcullis.dev/problems/")));
        body
    }
}

/// Where to send requests and with which credentials.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
    authorization: Option<String>,
}

impl Client {
    /// A plain HTTP client for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            tls: None,
            authorization: None,
        }
    }

    /// A TLS client for `addr` trusting only the CA in `ca_pem`.
    pub fn tls(addr: SocketAddr, ca_pem: &[u8]) -> Self {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.expect("CA PEM")).expect("CA accepted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: Some(TlsConnector::from(Arc::new(config))),
            authorization: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn admin(&self, token: &str) -> Self {
        self.with_authorization(&format!("Bearer {token}"))
    }

    /// The same client sending `Authorization: <value>`.
    pub fn with_authorization(&self, value: &str) -> Self {
        Client {
            authorization: Some(value.to_owned()),
            ..self.clone()
        }
    }

    /// The same client without credentials.
    pub fn anonymous(&self) -> Self {
        Client {
            authorization: None,
            ..self.clone()
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], None).await
    }

    /// GET with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, path, headers, None).await
    }

    /// PUT a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> Resp {
        self.put_json_with(path, body, &[]).await
    }

    /// PUT a JSON body with extra headers.
    pub async fn put_json_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(Method::PUT, path, &all, Some(body.to_string().into_bytes()))
            .await
    }

    /// PUT an XML document.
    pub async fn put_xml(&self, path: &str, xml: &str) -> Resp {
        self.send(
            Method::PUT,
            path,
            &[("content-type", "application/xml")],
            Some(xml.as_bytes().to_vec()),
        )
        .await
    }

    /// POST a JSON body (or none).
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Resp {
        self.post_with(path, body, &[]).await
    }

    /// POST a JSON body (or none) with extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut all = Vec::from(headers);
        if body.is_some() {
            all.push(("content-type", "application/json"));
        }
        self.send(
            Method::POST,
            path,
            &all,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// DELETE with extra headers.
    pub async fn delete_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::DELETE, path, headers, None).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        self.delete_with(path, &[]).await
    }

    /// Any request.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Any request; connection and protocol errors returned.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, Box<dyn std::error::Error + Send + Sync>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        if let Some(auth) = &self.authorization {
            request
                .headers_mut()
                .insert("authorization", HeaderValue::from_str(auth)?);
        }
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        let tcp = TcpStream::connect(self.addr).await?;
        let response = match &self.tls {
            None => send_on(TokioIo::new(tcp), request).await?,
            Some(connector) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, tcp).await?;
                send_on(TokioIo::new(tls), request).await?
            }
        };
        Ok(response)
    }
}

async fn send_on<IO>(
    io: IO,
    request: Request<Full<Bytes>>,
) -> Result<Resp, Box<dyn std::error::Error + Send + Sync>>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// A management plane on a temporary data directory, and a client with its admin token.
pub struct Harness {
    /// The running management plane.
    pub management: portcullis_management::Management,
    /// A client with the admin token.
    pub admin: Client,
    _dir: tempfile::TempDir,
}

/// Plain HTTP on a free loopback port, with the data under `dir/data`.
pub fn options(dir: &std::path::Path) -> portcullis_management::ManagementOptions {
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    portcullis_management::ManagementOptions::new(listen, dir.join("data"))
}

/// Starts a management plane with [`options`] changed by `edit`.
pub async fn start_with(
    edit: impl FnOnce(&mut portcullis_management::ManagementOptions),
) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    edit(&mut opts);
    let management = portcullis_management::Management::start(opts)
        .await
        .expect("management plane starts");
    let token = management
        .created_admin_token()
        .expect("first start creates an admin token")
        .to_owned();
    let admin = Client::new(management.local_addr()).admin(&token);
    Harness {
        management,
        admin,
        _dir: dir,
    }
}
