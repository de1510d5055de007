//! The driver's [`Runtime`] on tokio: TCP through `tokio_util::compat`, tokio's
//! timers, tasks, blocking threads and resolver.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use portcullis_driver::disk::{Disk, OsDisk};
use portcullis_driver::runtime::{os_random, Listener, Runtime, Timer};
use portcullis_driver::socket::{Socket, SocketKind};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Tokio: the production container's runtime. Tasks go to the runtime the
/// gateway was started on.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRuntime;

/// A tokio TCP connection, as `futures-io` streams (with
/// [`TokioRuntime`]'s socket checks).
pub type TokioStream = Socket<Compat<TcpStream>, TokioRuntime>;

impl SocketKind<Compat<TcpStream>> for TokioRuntime {
    fn set_nodelay(io: &Compat<TcpStream>) {
        let _ = io.get_ref().set_nodelay(true);
    }

    /// Costs no system call while nothing happened.
    fn still_open(io: &mut Compat<TcpStream>) -> bool {
        let tcp = io.get_ref();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match tcp.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// A tokio TCP listener.
#[derive(Debug)]
pub struct TokioListener(TcpListener);

/// Binds a listener as `TcpListener::bind` does (`SO_REUSEADDR`, a backlog of
/// 1024), with `SO_REUSEPORT` if `reuse_port`, and with TCP_NODELAY on the
/// listening socket: Linux copies it to every accepted socket, which spares one
/// `setsockopt` per connection.
fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    if reuse_port {
        #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
        socket.set_reuseport(true)?;
        #[cfg(not(all(unix, not(target_os = "solaris"), not(target_os = "illumos"))))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is not available on this system",
        ));
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Listener for TokioListener {
    type Stream = TokioStream;

    async fn accept(&self) -> io::Result<(TokioStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Linux hands accepted sockets the listener's TCP_NODELAY (see `listen`);
        // elsewhere it is set on each.
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        Ok((Socket::new(stream.compat()), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

pin_project_lite::pin_project! {
    /// A tokio `Sleep`, resettable in place.
    #[derive(Debug)]
    pub struct TokioTimer {
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl Future for TokioTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().sleep.poll(cx)
    }
}

impl Timer for TokioTimer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.project().sleep.reset(deadline.into());
    }
}

impl Runtime for TokioRuntime {
    type Stream = TokioStream;
    type Listener = TokioListener;
    type Timer = TokioTimer;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn timer(&self, deadline: Instant) -> TokioTimer {
        TokioTimer {
            sleep: tokio::time::sleep_until(deadline.into()),
        }
    }

    /// Tokio's clock, so a paused or simulated tokio clock drives the core's too.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<TokioListener> {
        listen(addr, false).map(TokioListener)
    }

    async fn bind_reuse_port(&self, addr: SocketAddr) -> io::Result<TokioListener> {
        listen(addr, true).map(TokioListener)
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<TokioStream> {
        let tcp = TcpStream::connect((host, port)).await?;
        Ok(Socket::new(tcp.compat()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| e.to_string())
    }

    fn fill_random(&self, out: &mut [u8]) -> bool {
        os_random(out)
    }

    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(OsDisk)
    }
}
