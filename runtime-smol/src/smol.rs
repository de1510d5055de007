//! The driver's [`Runtime`] on smol: `Async` TCP sockets, `async-io` timers,
//! the crate's executor and `smol::unblock` for blocking work.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use portcullis_driver::disk::{Disk, OsDisk};
use portcullis_driver::runtime::{os_random, Listener, Runtime};
use portcullis_driver::socket::{Socket, SocketKind};
use smol::Async;

use crate::executor;
use crate::tcp::SmolTcp;
use crate::timer::SmolTimer;

/// smol: tasks on the crate's executor (run by [`crate::block_on`], or else by
/// `SMOL_THREADS` threads of its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

/// A smol TCP connection (its socket checks are [`SmolRuntime`]'s).
pub type SmolStream = Socket<SmolTcp, SmolRuntime>;

/// A smol TCP listener.
#[derive(Debug)]
pub struct SmolListener(Async<TcpListener>);

impl Listener for SmolListener {
    type Stream = SmolStream;

    fn accept(&self) -> impl Future<Output = io::Result<(SmolStream, SocketAddr)>> + Send {
        let accepted = self.0.accept();
        async {
            let (tcp, peer) = accepted.await?;
            // Set per connection here (the driver does not): the tokio adapter
            // sets it once on the listening socket instead.
            let _ = tcp.get_ref().set_nodelay(true);
            Ok((Socket::new(SmolTcp::new(tcp)), peer))
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

impl Runtime for SmolRuntime {
    type Stream = SmolStream;
    type Listener = SmolListener;
    type Timer = SmolTimer;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        executor::spawn(task);
    }

    fn timer(&self, deadline: Instant) -> SmolTimer {
        SmolTimer::at(deadline)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<SmolListener>> + Send {
        let bound = Async::<TcpListener>::bind(addr).map(SmolListener);
        async { bound }
    }

    /// Connects to the first resolved address that answers.
    async fn connect(&self, host: &str, port: u16) -> io::Result<SmolStream> {
        let addrs = smol::net::resolve((host, port)).await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
        for addr in addrs {
            match Async::<TcpStream>::connect(addr).await {
                Ok(tcp) => return Ok(Socket::new(SmolTcp::new(tcp))),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        smol::unblock(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)))
            .await
            .map_err(|_| "blocking work panicked".to_owned())
    }

    fn fill_random(&self, out: &mut [u8]) -> bool {
        os_random(out)
    }

    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(OsDisk)
    }

    fn log_name(&self) -> Option<&'static str> {
        Some("smol")
    }
}

/// The checks of smol's sockets.
impl SocketKind<SmolTcp> for SmolRuntime {
    /// A backend that closed it (or sent anything at all, a TLS close_notify
    /// included) makes a peek return.
    fn still_open(io: &mut SmolTcp) -> bool {
        let mut probe = [0u8; 1];
        matches!(io.get_ref().get_ref().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn set_nodelay(io: &SmolTcp) {
        io.get_ref().get_ref().set_nodelay(true).ok();
    }

    /// async-io's close only flushes; the FIN is sent here.
    fn shutdown_write(io: &SmolTcp) -> io::Result<()> {
        match io.get_ref().get_ref().shutdown(std::net::Shutdown::Write) {
            // The peer already closed: nothing left to shut.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}
