//! Backend connections: the streams the driver polls and the idle pool shared
//! by every task of a gateway.

pub mod pool;
pub mod stream;
