//! What an idle keep-alive connection holds on tokio: the connection's future
//! (`portcullis_driver::conn::serve`) is all of a parked connection's state
//! besides the task, the socket's registration and the stop listener, so its
//! size is bounded here and cannot grow unnoticed. (The gateway boxes it once,
//! in its task; the busy machine is boxed inside it only while busy.)

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_core::cert::ClientCertificate;
use portcullis_core::proxy::{ConnSettings, ParkedConn};
use portcullis_driver::conn::Shared;
use portcullis_driver::stop::Stop;
use portcullis_runtime_tokio::{TokioRuntime, TokioStream};

/// The size of the future `serve` returns, without making one.
fn future_size<F, Fut>(_serve: F) -> usize
where
    F: FnOnce(
        TokioRuntime,
        TokioStream,
        SocketAddr,
        Arc<ConnSettings>,
        Option<Arc<ClientCertificate>>,
        Arc<Shared<TokioRuntime>>,
        Stop,
    ) -> Fut,
{
    std::mem::size_of::<Fut>()
}

#[test]
fn an_idle_connection_holds_a_small_future() {
    let serve = future_size(portcullis_driver::conn::serve::<TokioRuntime, TokioStream>);
    let parked = std::mem::size_of::<ParkedConn>();
    eprintln!(
        "machine {} timer {} stream {}",
        std::mem::size_of::<portcullis_core::proxy::ProxyConn>(),
        std::mem::size_of::<portcullis_runtime_tokio::TokioTimer>(),
        std::mem::size_of::<TokioStream>()
    );
    let stop = Stop::new();
    eprintln!("cancelled {}", std::mem::size_of_val(&stop.cancelled()));
    eprintln!("serve future: {serve} bytes; parked machine: {parked} bytes");
    assert!(serve <= 512, "the connection future grew to {serve} bytes");
    assert!(parked <= 96, "the parked machine grew to {parked} bytes");
}
