//! One outgoing HTTP/1.1 connection (TLS by rustls with the ring provider and the
//! Mozilla roots for https), as the OpenAPI fetch and the portal's "try it"
//! console use it: the caller picks the TCP connection (so it decides which
//! address is dialled), this opens HTTP on it.

use std::sync::{Arc, OnceLock};

use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::{rustls, TlsConnector};

/// Where a URL's connection goes: the host to dial (no IPv6 brackets), the port
/// (the scheme's default when none is given), and whether it is https.
pub(crate) fn target(uri: &Uri) -> (&str, u16, bool) {
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or_default();
    // `[::1]` in a URL is `::1` to connect to.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (
        bare,
        uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        https,
    )
}

/// The `Host` header for a request to `uri`.
pub(crate) fn host_header(uri: &Uri) -> &str {
    uri.authority()
        .map_or_else(|| uri.host().unwrap_or_default(), |a| a.as_str())
}

/// An open HTTP/1.1 connection; dropping it closes the connection.
pub(crate) struct Connection<B> {
    /// Sends requests on the connection.
    pub(crate) sender: SendRequest<B>,
    driver: JoinHandle<()>,
}

impl<B> Drop for Connection<B> {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Opens HTTP/1.1 on `tcp` to `uri`'s host, with TLS first when it is https;
/// `what` names the connection in debug logs. The error is a reason to show.
pub(crate) async fn open<B>(
    uri: &Uri,
    tcp: TcpStream,
    what: &'static str,
) -> Result<Connection<B>, String>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (host, _, https) = target(uri);
    let stream: Box<dyn Io> = if https {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = tls_connector()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, what, "outgoing connection ended");
        }
    });
    Ok(Connection { sender, driver })
}

/// The TLS client configuration, built once.
fn tls_connector() -> Result<TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_host_headers() {
        let uri: Uri = "https://[::1]/x".parse().unwrap();
        assert_eq!(target(&uri), ("::1", 443, true));
        assert_eq!(host_header(&uri), "[::1]");
        let uri: Uri = "http://127.0.0.1:8080/a?b".parse().unwrap();
        assert_eq!(target(&uri), ("127.0.0.1", 8080, false));
        assert_eq!(host_header(&uri), "127.0.0.1:8080");
    }
}
