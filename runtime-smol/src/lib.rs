//! The smol runtime of the Portcullis gateway: the driver's [`Runtime`] trait
//! on smol ([`SmolRuntime`]), and the gateway on it. Tasks run on smol's global
//! executor (`smol::spawn`; `SMOL_THREADS` threads).
//!
//! The gateway code itself (connection pump, pools, call-outs, sync, telemetry,
//! start-up and shutdown) is `portcullis-driver`'s, shared with tokio.
//!
//! [`Runtime`]: portcullis_driver::Runtime

mod smol;

pub use portcullis_driver::api::*;

pub use crate::smol::{SmolListener, SmolRuntime, SmolStream, SmolTimer};

/// A gateway on smol: `Gateway::start(options)` from any executor; its tasks
/// run on smol's global one.
pub type Gateway = portcullis_driver::Gateway<SmolRuntime>;

/// The call-out client on smol (`Callouts::new(extra_ca)`).
pub type Callouts = portcullis_driver::Callouts<SmolRuntime>;
