//! The simulated hosts and what they run on: turmoil's network and disk put into
//! the real gateway (the driver, through [`crate::runtime::SimRuntime`]) and
//! management plane.

pub mod audit;
pub mod gateway;
pub mod management;
pub mod redis;
pub mod traffic;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_driver::Disk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::fs::shim::std::fs as simfs;

/// The management plane's host name.
pub const MANAGEMENT: &str = "mgmt";
/// The management plane's port.
pub const MANAGEMENT_PORT: u16 = 8443;
/// The backend's host name and port.
pub const BACKEND: &str = "backend";
pub const BACKEND_PORT: u16 = 8000;
/// The gateways' API port.
pub const GATEWAY_PORT: u16 = 8080;
/// The simulation's Unix epoch offset: simulated time starts here.
pub const EPOCH_UNIX: u64 = 1_800_000_000;

/// The gateway host names.
pub fn gateway_host(gw: usize) -> String {
    format!("gw{gw}")
}

/// The wall clock on simulated time.
pub fn wall_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX) + turmoil::sim_elapsed().unwrap_or_default()
}

/// Unix seconds on simulated time.
pub fn unix_now() -> u64 {
    EPOCH_UNIX + turmoil::sim_elapsed().unwrap_or_default().as_secs()
}

/// turmoil's network; name resolution of the management plane fails while
/// `dns_failure` is set (see [`crate::runtime::SimRuntime`]).
#[derive(Debug, Clone, Default)]
pub struct SimNet {
    pub dns_failure: Arc<AtomicBool>,
}

/// The management plane's listener on turmoil's network, for axum.
pub struct AxumListener(pub turmoil::net::TcpListener);

impl axum::serve::Listener for AxumListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The host's simulated disk (turmoil's): it survives a crash, loses what was not
/// synced and may tear such writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimDisk;

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        simfs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(simfs::read_dir(dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        simfs::read(path)
    }

    fn write_new_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut file = simfs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        simfs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        simfs::sync_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        simfs::remove_file(path)
    }

    fn overwrite_unsynced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        simfs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?
            .write_all(bytes)
    }
}

/// A plain HTTP/1.1 exchange on a new connection: status, headers (lowercase
/// names), body. `Connection: close`, read to the end.
pub async fn http(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = turmoil::net::TcpStream::connect((host, port)).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_response(&raw).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad response"))
}

/// Status, headers (lowercase names) and body.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    Some((status, headers, body))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
