//! Portcullis core: every decision of the gateway, and no IO.
//!
//! This crate never touches a socket, file, clock, thread or random source. Time
//! (`now`) and randomness (seeds) are inputs; outputs are polled. See DESIGN.md.

pub mod callout;
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
