//! APIM policies: documents compiled once per configuration into pipelines that
//! run per request without touching XML.

pub mod context;
pub mod urlenc;
