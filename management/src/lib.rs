//! Portcullis management plane: the only place configuration changes, and what gateways sync from.

pub mod store;
