//! Client connections: the byte pump around the core's `ProxyConn` and what
//! its events ask for.

pub mod events;
