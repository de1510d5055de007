//! Keeping `validate-jwt`'s OpenID key sets fresh.

pub mod key_sets;
