//! Configuration snapshot model: what a gateway serves, in the JSON the management plane sends.
//!
//! A [`Snapshot`] is parsed with [`Snapshot::from_json`] (camelCase fields, unknown
//! fields refused so a typo in a hand-written file is reported rather than ignored),
//! checked with [`Snapshot::validate`], and compiled once into a [`CompiledConfig`]
//! that requests read without touching the JSON model again.

mod api_type;
mod backend_tls;
mod compiled;
mod error;
mod model;
pub mod reload;
pub mod store;
mod tls;
mod validate;
mod versions;

#[cfg(test)]
mod references_tests;
#[cfg(test)]
mod tests;

pub use crate::http::service_url::{is_loopback_host, is_loopback_ip, ServiceUrl, UrlError};
pub use compiled::{CompiledConfig, KeyCheck};
pub use error::{
    ApiProblem, ConfigError, EntityProblem, OperationProblem, SubscriptionProblem, TlsProblem,
};
pub use model::{
    Api, ApiTelemetry, Backend, NamedValue, Operation, PolicyFragment, Product, Scheme, Snapshot,
    Subscription, SubscriptionKeyParameterNames, SubscriptionState,
};
pub use model::{ApiType, ON_HANDSHAKE};
pub use reload::{ConfigReload, FileStamp, Reload};
pub use tls::cipher_suite;
pub use tls::{BackendTls, CaCertificate, Certificate, Hostname, TlsVersion, CIPHER_SUITES};
pub use versions::{VersionProblem, VersionSet, VersionSetProblem, VersioningScheme};
