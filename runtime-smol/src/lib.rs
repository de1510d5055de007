//! The smol runtime of the Portcullis gateway: the driver's [`Runtime`] trait
//! on smol ([`SmolRuntime`]), and the gateway on it. Tasks run on the crate's
//! executor: on the threads of [`block_on`], or else on `SMOL_THREADS` threads
//! of its own.
//!
//! The gateway code itself (connection pump, pools, call-outs, sync, telemetry,
//! start-up and shutdown) is `portcullis-driver`'s, shared with tokio.
//!
//! [`Runtime`]: portcullis_driver::Runtime

mod executor;
mod smol;
mod tcp;
mod timer;

pub use portcullis_driver::api::*;

pub use crate::executor::{block_on, threads_from_env};
pub use crate::smol::{SmolListener, SmolRuntime, SmolStream};
pub use crate::tcp::SmolTcp;
pub use crate::timer::SmolTimer;

/// A gateway on smol: `Gateway::start(options)` from any executor; its tasks
/// run on the crate's one.
pub type Gateway = portcullis_driver::Gateway<SmolRuntime>;

/// The call-out client on smol (`Callouts::new(extra_ca)`).
pub type Callouts = portcullis_driver::Callouts<SmolRuntime>;
