//! The driver's [`Runtime`] on turmoil: the simulated network (through
//! `tokio_util::compat`), tokio's timers (turmoil drives tokio's clock), the
//! host's simulated disk, a wall clock on simulated time, a seeded random
//! stream, and blocking work run inline so a run is deterministic.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::{Instant, SystemTime};

use portcullis_driver::runtime::{Listener, Runtime};
use portcullis_driver::socket::{Socket, SocketKind};
use portcullis_driver::{Disk, Sabotage};
use portcullis_runtime_tokio::{TokioRuntime, TokioTimer};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::hosts::{wall_clock, SimDisk, SimNet, MANAGEMENT};

/// One gateway host's runtime in the simulation.
#[derive(Debug, Clone)]
pub struct SimRuntime {
    net: SimNet,
    seed: u64,
    drawn: Arc<AtomicU64>,
    sabotage: Sabotage,
}

impl SimRuntime {
    /// A runtime on `net` whose random bytes come from `seed`, running with
    /// the fault switches `sabotage`.
    pub fn new(net: SimNet, seed: u64, sabotage: Sabotage) -> SimRuntime {
        SimRuntime {
            net,
            seed,
            drawn: Arc::new(AtomicU64::new(0)),
            sabotage,
        }
    }
}

/// A simulated TCP connection, as `futures-io` streams.
pub type SimStream = Socket<Compat<turmoil::net::TcpStream>, SimTcp>;

/// The socket checks of turmoil's TCP streams.
#[derive(Debug)]
pub struct SimTcp;

impl SocketKind<Compat<turmoil::net::TcpStream>> for SimTcp {
    fn set_nodelay(_: &Compat<turmoil::net::TcpStream>) {}

    /// Anything readable (data or the end) makes an idle connection unusable.
    fn still_open(io: &mut Compat<turmoil::net::TcpStream>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        futures_io::AsyncRead::poll_read(Pin::new(io), &mut cx, &mut probe).is_pending()
    }
}

/// A simulated TCP listener.
pub struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    type Stream = SimStream;

    async fn accept(&self) -> io::Result<(SimStream, SocketAddr)> {
        let accepted = self.0.accept().await;
        accepted.map(|(tcp, peer)| (Socket::new(tcp.compat()), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Runtime for SimRuntime {
    type Stream = SimStream;
    type Listener = SimListener;
    type Timer = TokioTimer;

    /// On the host's tokio runtime, which turmoil runs.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        TokioRuntime.spawn(task);
    }

    /// Tokio's timers: turmoil drives tokio's clock.
    fn timer(&self, deadline: Instant) -> TokioTimer {
        TokioRuntime.timer(deadline)
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }

    fn wall_clock(&self) -> SystemTime {
        wall_clock()
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<SimListener> {
        turmoil::net::TcpListener::bind(addr).await.map(SimListener)
    }

    /// Name resolution of the management plane fails while the network's
    /// `dns_failure` is set.
    async fn connect(&self, host: &str, port: u16) -> io::Result<SimStream> {
        if host == MANAGEMENT && self.net.dns_failure.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "failed to lookup address information",
            ));
        }
        let stream = turmoil::net::TcpStream::connect((host, port)).await?;
        Ok(Socket::new(stream.compat()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| "blocking work panicked".to_owned())
    }

    /// The next bytes of the seeded stream.
    fn fill_random(&self, out: &mut [u8]) -> bool {
        for chunk in out.chunks_mut(32) {
            let n = self.drawn.fetch_add(1, Ordering::Relaxed);
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&self.seed.to_le_bytes());
            input[8..].copy_from_slice(&n.to_le_bytes());
            let digest = ring::digest::digest(&ring::digest::SHA256, &input);
            chunk.copy_from_slice(&digest.as_ref()[..chunk.len()]);
        }
        true
    }

    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(SimDisk)
    }

    fn sabotage(&self) -> Sabotage {
        self.sabotage
    }
}
