//! `portcullis healthcheck`: one HTTP GET, exit 0 on a 2xx answer. The
//! container image has no shell and no curl, so its `HEALTHCHECK` runs this.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// APIM's probe path on the API port: 200 once a configuration is in force.
const PROBE_PATH: &str = "/status-0123456789abcdef";

/// How long the whole check may take: a probe that hangs is a failed probe.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Options of `portcullis healthcheck`.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthcheckArgs {
    /// URL to GET (plain http only) [default: the probe path on the gateway's
    /// `PORTCULLIS_LISTEN` port, on loopback].
    url: Option<String>,
    /// The gateway's listen address, to build the default URL from.
    #[arg(long, default_value = "0.0.0.0:8080", env = "PORTCULLIS_LISTEN")]
    listen: SocketAddr,
}

/// Runs the check; an error (exit status 1) unless the answer is a 2xx.
pub(crate) fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(|| default_url(args.listen));
    let status = get_status(&url)?;
    if !(200..300).contains(&status) {
        bail!("GET {url}: status {status}");
    }
    Ok(())
}

/// The probe URL on the port the gateway listens on, over loopback when it
/// listens on every interface.
fn default_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}{PROBE_PATH}")
}

/// Sends `GET url` over HTTP/1.1 and returns the response status.
fn get_status(url: &str) -> anyhow::Result<u16> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // One write: `write!` on the stream would send each piece as its own segment.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: portcullis-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .context("sending the request")?;
    // The status line is all that is read: the first bytes of the answer.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream
            .read(&mut head[len..])
            .context("reading the answer")?;
        if n == 0 {
            break;
        }
        len += n;
    }
    parse_status(&head[..len]).with_context(|| format!("GET {url}: no HTTP status line"))
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are checked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9/a?b").unwrap(),
            ("127.0.0.1:9".into(), "/a?b".into())
        );
        assert_eq!(
            split_url("http://gw").unwrap(),
            ("gw:80".into(), "/".into())
        );
        assert!(split_url("https://gw/").is_err());
    }

    #[test]
    fn the_default_url_is_the_probe_on_loopback() {
        assert_eq!(
            default_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080/status-0123456789abcdef"
        );
        assert_eq!(
            default_url("10.0.0.2:81".parse().unwrap()),
            "http://10.0.0.2:81/status-0123456789abcdef"
        );
    }

    #[test]
    fn the_probe_path_is_the_one_the_gateway_answers() {
        assert_eq!(
            PROBE_PATH.as_bytes(),
            portcullis_core::proxy::local::STATUS_PROBE_PATH
        );
    }

    #[test]
    fn statuses_are_read_from_the_status_line() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0"), None);
    }

    #[test]
    fn a_real_listener_is_checked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().unwrap();
                // The whole head, as a server reads it before answering.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "the request ended early");
                    head.extend_from_slice(&buf[..n]);
                }
                write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
        });
        let url = format!("http://{addr}{PROBE_PATH}");
        assert_eq!(get_status(&url).unwrap(), 200);
        assert_eq!(get_status(&url).unwrap(), 503);
        server.join().unwrap();
    }
}
