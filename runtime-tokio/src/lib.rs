//! The tokio runtime of the Portcullis gateway: the driver's [`Runtime`] trait
//! on tokio ([`TokioRuntime`]), and the gateway on it.
//!
//! Everything else (the connection pump, pools, call-outs, sync, telemetry,
//! start-up and shutdown) is `portcullis-driver`'s, the same on every runtime.
//!
//! [`Runtime`]: portcullis_driver::Runtime

mod tokio;

pub use portcullis_driver::api::*;

pub use crate::tokio::{TokioListener, TokioRuntime, TokioStream, TokioTimer};

/// A gateway on tokio; start it with `Gateway::start(options)` inside a tokio
/// runtime.
pub type Gateway = portcullis_driver::Gateway<TokioRuntime>;

/// A thread-per-core gateway's listener on another thread (`gateway.worker()`),
/// run on that thread's own tokio runtime.
pub type GatewayWorker = portcullis_driver::GatewayWorker<TokioRuntime>;

/// A [`GatewayWorker`] with its listener bound, ready to serve.
pub type BoundWorker = portcullis_driver::BoundWorker<TokioRuntime>;

/// The call-out client on tokio (`Callouts::new(extra_ca)`).
pub type Callouts = portcullis_driver::Callouts<TokioRuntime>;
