//! Gateway ↔ management plane: tokens, the sync agent and the configuration backup.

pub mod token;
