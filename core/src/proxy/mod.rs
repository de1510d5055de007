//! The proxy: the per-connection state machine and the responses the gateway makes itself.

pub mod admission;
pub mod conn;
pub mod local;
pub mod settings;
pub mod setup;
pub mod subscription;

pub use conn::{Event, ParkedConn, ProxyConn, UpstreamFailure, UpstreamTarget};
pub use settings::{ConfigSource, ConnSettings, IdSeq, PolicyEnv, Timeouts};
