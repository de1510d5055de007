//! Portcullis management plane: the only place configuration changes, and what gateways sync from.

pub(crate) mod admin_ui;
pub mod data_dir;
pub mod http;
pub(crate) mod http_client;
pub mod openapi_import;
pub(crate) mod portal;
pub mod server;
pub mod signing;
pub mod store;
pub mod tls;
pub(crate) mod web;

pub use server::{Environment, Management, ManagementError, ManagementOptions};
pub use tls::TlsMode;
