//! Portcullis core: every decision of the gateway, and no IO.
//!
//! This crate never touches a socket, file, clock, thread or random source. Time
//! (`now`) and randomness (seeds) are inputs; outputs are polled, under the one
//! machine contract of [`machine`]. See ARCHITECTURE.md at the repository root.
//!
//! The modules below are the whole API; the re-exports at the end name the
//! machines and the types a driver needs first.

#![warn(missing_docs)]

pub mod callout;
pub mod cert;
pub mod config;
pub mod expr;
pub mod http;
pub mod machine;
pub mod ops_endpoints;
pub mod policy;
pub mod pool;
pub mod proxy;
pub mod router;
pub mod sync;
pub mod telemetry;

// The machines and what drives them, for a driver's first imports.
pub use callout::{CalloutExchange, CalloutRequest, KeySetFetch};
pub use config::{CompiledConfig, Snapshot};
pub use machine::Machine;
pub use policy::store::{StoreAnswer, StoreRequest};
pub use proxy::{ConnSettings, Event, ProxyConn};
pub use sync::SyncAgent;
pub use telemetry::uploader::Uploader;
