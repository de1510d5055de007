//! APIM policies: documents compiled once per configuration into pipelines that
//! run per request without touching XML.

pub mod attrs;
pub mod context;
pub mod error;
pub mod urlenc;
pub mod xml;
