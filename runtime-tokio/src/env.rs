//! What the gateway takes from its surroundings: the network, the disk (for the
//! configuration backup), the wall clock, randomness and where blocking work runs.
//!
//! [`Environment::os`] is the production one (tokio sockets and DNS, `std::fs`,
//! the system clock, the OS random source, blocking threads). A deterministic
//! simulation (`sim/`, on turmoil) puts in its own network and disk, a wall clock
//! on simulated time, a seed, and runs blocking work inline.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A boxed future, as the seams return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream another network implementation hands out.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection: a tokio TCP stream (production, no indirection), or any other
/// stream (a simulated one).
pub enum NetStream {
    /// A real TCP connection.
    Tcp(TcpStream),
    /// Another network's stream.
    Other(Box<dyn Io>),
}

impl fmt::Debug for NetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetStream::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            NetStream::Other(_) => f.write_str("Other"),
        }
    }
}

impl NetStream {
    /// Wraps another network's stream.
    pub fn other(io: impl Io) -> NetStream {
        NetStream::Other(Box::new(io))
    }

    /// Disables Nagle's algorithm where there is one.
    pub(crate) fn set_nodelay(&self) {
        if let NetStream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Whether an idle connection can still be used: nothing arrived on it and it
    /// is not closed. Costs no system call while nothing happened.
    pub(crate) fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self {
            NetStream::Tcp(tcp) => match tcp.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => {
                    let mut probe = [0u8; 1];
                    matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                }
            },
            // Anything readable (data or the end) makes an idle connection unusable.
            NetStream::Other(io) => {
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                Pin::new(io).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            NetStream::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            NetStream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            NetStream::Other(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NetStream::Tcp(s) => s.is_write_vectored(),
            NetStream::Other(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            NetStream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            NetStream::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A bound listener.
pub trait Listener: Send + Sync + 'static {
    /// The next connection and its peer.
    fn accept(&self) -> BoxFuture<'_, io::Result<(NetStream, SocketAddr)>>;
    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Sockets: listening, and connecting by host name (name resolution included).
pub trait Net: Send + Sync + fmt::Debug + 'static {
    /// Binds a listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
    /// Resolves `host` and connects to `port` on it.
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<NetStream>>;
}

/// Tokio's sockets and resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNet;

impl Listener for TcpListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(NetStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = TcpListener::accept(self).await?;
            Ok((NetStream::Tcp(stream), peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

impl Net for TokioNet {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(addr).await?;
            Ok(Box::new(listener) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<NetStream>> {
        Box::pin(async move { Ok(NetStream::Tcp(TcpStream::connect((host, port)).await?)) })
    }
}

/// The few file operations the configuration backup needs. Called from blocking
/// context (see [`Blocking`]).
pub trait Disk: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` and its parents if missing (owner-only where that exists).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file (`NotFound` if there is none).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path`, which must not exist (owner-only), writes `bytes` and
    /// syncs the file to stable storage.
    fn write_new_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes renames in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Overwrites `path` in place without syncing: only for
    /// [`Sabotage::write_backup_in_place`]; unsupported unless a simulated disk
    /// provides it.
    #[cfg(feature = "sabotage")]
    #[doc(hidden)]
    fn overwrite_unsynced(&self, _path: &Path, _bytes: &[u8]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsDisk;

impl Disk for OsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_new_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    /// Windows has no directory fsync; the rename is made durable by the file system.
    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// Where blocking work (file IO, compiling a configuration) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blocking {
    /// On tokio's blocking threads (production).
    #[default]
    Threads,
    /// On the calling task: deterministic, for a single-threaded simulation.
    Inline,
}

/// Code broken on purpose, to show that the simulation catches each kind of bug.
/// Every switch is off in [`Environment::os`]; nothing but the simulation's
/// tests turns one on. Only compiled with the `sabotage` feature, which only
/// the simulation enables.
#[cfg(feature = "sabotage")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sabotage {
    /// Drops the configuration in force when a fetch fails (invariant 1).
    pub forget_config_on_failed_fetch: bool,
    /// Never reads the backup at start (invariant 2).
    pub ignore_backup_at_start: bool,
    /// Skips writing the backup for every other applied configuration, so a
    /// restart serves an older one (invariant 3).
    pub skip_some_backup_writes: bool,
    /// Stops syncing after the first failed fetch (invariant 4).
    pub stop_after_failed_fetch: bool,
    /// Writes the backup in place, without a temporary file or fsync, so a
    /// crash loses or tears it (the simulation's disk does what a real one
    /// may): the restarted gateway cannot serve its last configuration
    /// (invariant 2; the core's checksum keeps the torn file from being served).
    pub write_backup_in_place: bool,
    /// Reads the backup without checking its checksum, as a reader that
    /// trusts the disk would (invariant 5: a file whose checksum was damaged
    /// still decrypts, and is served although the disk damaged it).
    pub skip_backup_checksum: bool,
    /// Sends every telemetry upload under a new batch id, as an uploader that
    /// forgot batch ids would: a retried batch the management plane already
    /// stored (its answer lost) is stored again (invariant 6).
    pub forget_telemetry_batch_ids: bool,
}

/// The gateway's surroundings; see the module documentation.
pub struct Environment {
    /// Sockets.
    pub net: Arc<dyn Net>,
    /// Files of the configuration backup.
    pub disk: Arc<dyn Disk>,
    /// The wall clock (token expiry warnings, `context.Timestamp`).
    pub wall_clock: fn() -> SystemTime,
    /// `None`: randomness from the OS; `Some(seed)`: a deterministic stream.
    pub seed: Option<u64>,
    /// Where blocking work runs.
    pub blocking: Blocking,
    /// Fault switches (simulation only).
    #[cfg(feature = "sabotage")]
    #[doc(hidden)]
    pub sabotage: Sabotage,
    drawn: AtomicU64,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Environment");
        s.field("net", &self.net)
            .field("disk", &self.disk)
            .field("seed", &self.seed)
            .field("blocking", &self.blocking);
        #[cfg(feature = "sabotage")]
        s.field("sabotage", &self.sabotage);
        s.finish_non_exhaustive()
    }
}

impl Default for Environment {
    fn default() -> Self {
        Environment::os()
    }
}

impl Environment {
    /// Production: tokio's network, the OS file system, clock and random source,
    /// blocking threads.
    pub fn os() -> Environment {
        Environment::new(Arc::new(TokioNet), Arc::new(OsDisk))
    }

    /// This network and disk, with the system clock, OS randomness and blocking
    /// threads (change the public fields for the rest).
    pub fn new(net: Arc<dyn Net>, disk: Arc<dyn Disk>) -> Environment {
        Environment {
            net,
            disk,
            wall_clock: SystemTime::now,
            seed: None,
            blocking: Blocking::Threads,
            #[cfg(feature = "sabotage")]
            sabotage: Sabotage::default(),
            drawn: AtomicU64::new(0),
        }
    }

    /// Random bytes: from the OS, or the next ones of the seeded stream.
    pub(crate) fn random_bytes<const N: usize>(&self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        match self.seed {
            None => {
                use ring::rand::SecureRandom;
                ring::rand::SystemRandom::new().fill(&mut out).ok()?;
            }
            Some(seed) => {
                for chunk in out.chunks_mut(32) {
                    let n = self.drawn.fetch_add(1, Ordering::Relaxed);
                    let mut input = [0u8; 16];
                    input[..8].copy_from_slice(&seed.to_le_bytes());
                    input[8..].copy_from_slice(&n.to_le_bytes());
                    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
                    chunk.copy_from_slice(&digest.as_ref()[..chunk.len()]);
                }
            }
        }
        Some(out)
    }

    /// Runs blocking work where [`Environment::blocking`] says; `Err` if it panicked.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.blocking {
            Blocking::Threads => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| e.to_string()),
            Blocking::Inline => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|_| "blocking work panicked".to_owned()),
        }
    }
}
