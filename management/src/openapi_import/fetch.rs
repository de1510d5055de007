//! Fetching a document from an http(s) URL: one GET at a time over hyper's HTTP/1.1
//! client (TLS by rustls with the ring provider and the Mozilla roots), a few
//! redirects followed, within a total timeout and a size limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How long a whole fetch (redirects included) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// How many redirects are followed.
const MAX_REDIRECTS: usize = 5;

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL.
    #[error("`{0}` is not an absolute http or https URL")]
    BadUrl(String),
    /// Connecting, TLS or HTTP failed.
    #[error("fetching {url} failed: {reason}")]
    Failed {
        /// The URL being fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with a status other than 2xx.
    #[error("fetching {url} returned HTTP {status}")]
    Status {
        /// The URL being fetched.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// The body is larger than the limit.
    #[error("the document at {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL being fetched.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// More redirects than followed.
    #[error("fetching {0} took more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects(String),
    /// The whole fetch took too long.
    #[error("fetching {0} timed out after {secs} s", secs = FETCH_TIMEOUT.as_secs())]
    Timeout(String),
}

/// GETs `url` (http or https), following redirects, and returns the body (at most
/// `limit` bytes), within [`FETCH_TIMEOUT`].
pub async fn fetch(url: &str, limit: usize) -> Result<Bytes, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_following(url, limit))
        .await
        .map_err(|_| FetchError::Timeout(url.to_owned()))?
}

async fn fetch_following(url: &str, limit: usize) -> Result<Bytes, FetchError> {
    let mut current: Uri = parse_url(url)?;
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&current, limit).await? {
            Outcome::Body(bytes) => return Ok(bytes),
            Outcome::Redirect(location) => {
                current = resolve(&current, &location)?;
                tracing::debug!(to = %current, "following redirect");
            }
        }
    }
    Err(FetchError::TooManyRedirects(url.to_owned()))
}

fn parse_url(url: &str) -> Result<Uri, FetchError> {
    let bad = || FetchError::BadUrl(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        _ => Err(bad()),
    }
}

/// A `Location` against the URL it came from: absolute, or an absolute path.
fn resolve(base: &Uri, location: &str) -> Result<Uri, FetchError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return parse_url(location);
    }
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = base.scheme_str().unwrap_or("http");
        let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
        return parse_url(&format!("{scheme}://{authority}{location}"));
    }
    Err(FetchError::BadUrl(location.to_owned()))
}

enum Outcome {
    Body(Bytes),
    Redirect(String),
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn get_once(uri: &Uri, limit: usize) -> Result<Outcome, FetchError> {
    let url = uri.to_string();
    let failed = |reason: String| FetchError::Failed {
        url: url.clone(),
        reason,
    };
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or_default();
    // `[::1]` in a URL is `::1` to connect to.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let stream: Box<dyn Io> = if https {
        let name = ServerName::try_from(bare_host.to_owned()).map_err(|e| failed(e.to_string()))?;
        let tls = tls_connector()
            .map_err(|e| failed(e.to_string()))?
            .connect(name, tcp)
            .await
            .map_err(|e| failed(format!("TLS: {e}")))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "document fetch connection ended");
        }
    });
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(HOST, authority)
        .header(
            ACCEPT,
            "application/json, application/yaml, application/x-yaml, text/yaml, */*;q=0.5",
        )
        .header(USER_AGENT, "portcullis-management")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| failed(format!("HTTP {status} without a Location")))?;
            return Ok(Outcome::Redirect(location.to_owned()));
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.clone(),
                status: status.as_u16(),
            });
        }
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge {
                        url: url.clone(),
                        limit,
                    }
                } else {
                    failed(e.to_string())
                }
            })?;
        Ok(Outcome::Body(body.to_bytes()))
    }
    .await;
    driver.abort();
    result
}

fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
