//! The async half of the Portcullis gateway, written once for every runtime.
//!
//! `portcullis-core` decides; this crate moves bytes and time between the
//! core's machines and the outside world: the client connection pump, the
//! backend pool, the call-out client, the sync loop, telemetry uploads, file
//! watching, start-up and shutdown. It reaches the runtime only through the
//! [`Runtime`] trait, which `portcullis-runtime-tokio`, `portcullis-runtime-smol`
//! and the simulation (`portcullis-sim`, on turmoil) implement.

pub mod callout;
pub mod config_file;
pub mod conn;
pub mod jwks;
pub mod options;
pub mod runtime;
pub mod setup;
pub mod shared_config;
pub mod sync;
pub mod telemetry;
pub mod upstream;

pub use runtime::{Listener, Runtime, Stream, Timer};
