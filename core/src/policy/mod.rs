//! APIM policies: documents compiled once per configuration into pipelines that
//! run per request without touching XML.

pub mod actions;
pub mod attrs;
pub mod auth_cert;
pub mod azure_ad;
pub mod cache_store;
pub mod cert_store;
pub mod client_cert;
pub mod compile;
pub mod concurrency;
pub mod context;
pub mod cors;
pub mod counters;
pub mod emit_metric;
pub mod error;
mod expr_context;
pub mod ip_filter;
pub mod json_xml;
pub mod jwt;
pub mod liquid;
pub mod llm;
pub mod lru;
pub mod param;
pub mod pipeline;
pub mod program;
pub mod quota;
pub mod rate_limit;
pub mod respond;
pub mod response_cache;
pub mod send;
pub mod shared_counters;
pub mod store;
pub mod transform;
pub mod validate;
pub mod wait;
pub mod xml;
pub mod xslt;
