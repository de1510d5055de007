//! Fetching a document from an http(s) URL: one GET at a time over hyper's HTTP/1.1
//! client (TLS by rustls with the ring provider and the Mozilla roots), a few
//! redirects followed, within a total timeout and a size limit.
//!
//! Unless allowed, only public addresses are connected to: every hop's host is
//! resolved, every address it resolves to checked, and the connection made to a
//! checked address (not by resolving the name again, which a DNS server could
//! answer differently the second time).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use tokio::net::TcpStream;

use crate::http_client;

/// How long a whole fetch (redirects included) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// How many redirects are followed.
const MAX_REDIRECTS: usize = 5;

/// Which addresses a fetch may connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Also loopback, private, link-local and other non-public addresses (for labs);
    /// off by default.
    pub private_addresses: bool,
}

impl FetchPolicy {
    /// Why connecting to `addr` is refused, `None` when it is allowed.
    fn refusal(self, addr: SocketAddr) -> Option<&'static str> {
        if self.private_addresses {
            None
        } else {
            super::address::non_public(addr.ip())
        }
    }
}

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL.
    #[error("`{0}` is not an absolute http or https URL")]
    BadUrl(String),
    /// The host resolves to an address the policy refuses.
    #[error(
        "refusing to fetch {url}: {host} is {addr}, {reason}; the management plane fetches \
         documents from public addresses only (start it with --openapi-fetch-private to allow others)"
    )]
    Refused {
        /// The URL being fetched (a redirect's target, when a redirect led there).
        url: String,
        /// Its host.
        host: String,
        /// The refused address.
        addr: std::net::IpAddr,
        /// What kind of address it is.
        reason: &'static str,
    },
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
/// `limit` bytes), within [`FETCH_TIMEOUT`], connecting only where `policy` allows.
pub async fn fetch(url: &str, limit: usize, policy: FetchPolicy) -> Result<Bytes, FetchError> {
    fetch_checked(url, limit, |addr| policy.refusal(addr)).await
}

/// [`fetch`] with the address check given as a function (tests refuse by port).
async fn fetch_checked<F>(url: &str, limit: usize, refusal: F) -> Result<Bytes, FetchError>
where
    F: Fn(SocketAddr) -> Option<&'static str>,
{
    tokio::time::timeout(FETCH_TIMEOUT, fetch_following(url, limit, &refusal))
        .await
        .map_err(|_| FetchError::Timeout(url.to_owned()))?
}

async fn fetch_following<F>(url: &str, limit: usize, refusal: &F) -> Result<Bytes, FetchError>
where
    F: Fn(SocketAddr) -> Option<&'static str>,
{
    let mut current: Uri = parse_url(url)?;
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&current, limit, refusal).await? {
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

/// The addresses `host` resolves to, every one of them allowed by `refusal`.
async fn checked_addresses<F>(
    url: &str,
    host: &str,
    port: u16,
    refusal: &F,
) -> Result<Vec<SocketAddr>, FetchError>
where
    F: Fn(SocketAddr) -> Option<&'static str>,
{
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| FetchError::Failed {
            url: url.to_owned(),
            reason: format!("cannot resolve {host}: {e}"),
        })?
        .collect();
    // One refused address refuses the host: a name that also points inside the
    // network is not fetched from, whichever address would have been tried first.
    for addr in &addrs {
        if let Some(reason) = refusal(*addr) {
            return Err(FetchError::Refused {
                url: url.to_owned(),
                host: host.to_owned(),
                addr: addr.ip(),
                reason,
            });
        }
    }
    if addrs.is_empty() {
        return Err(FetchError::Failed {
            url: url.to_owned(),
            reason: format!("{host} resolves to no address"),
        });
    }
    Ok(addrs)
}

/// A connection to the first of `addrs` that accepts one.
async fn connect(url: &str, addrs: &[SocketAddr]) -> Result<TcpStream, FetchError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(FetchError::Failed {
        url: url.to_owned(),
        reason: last.unwrap_or_else(|| "no address to connect to".to_owned()),
    })
}

async fn get_once<F>(uri: &Uri, limit: usize, refusal: &F) -> Result<Outcome, FetchError>
where
    F: Fn(SocketAddr) -> Option<&'static str>,
{
    let url = uri.to_string();
    let failed = |reason: String| FetchError::Failed {
        url: url.clone(),
        reason,
    };
    let (host, port, _) = http_client::target(uri);
    let addrs = checked_addresses(&url, host, port, refusal).await?;
    let tcp = connect(&url, &addrs).await?;
    let mut conn = http_client::open(uri, tcp, "document fetch")
        .await
        .map_err(failed)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(HOST, http_client::host_header(uri))
        .header(
            ACCEPT,
            "application/json, application/yaml, application/x-yaml, text/yaml, */*;q=0.5",
        )
        .header(USER_AGENT, "portcullis-management")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let result = async {
        let response = conn
            .sender
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
    result
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
