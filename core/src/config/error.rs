//! Why a configuration snapshot was rejected, with the ids of what is wrong.

use crate::http::UrlError;
use crate::router::{ApiRouteProblem, BuildError, OperationRouteProblem};

/// A snapshot that cannot be served: bad JSON, or a validation failure naming the entity.
///
/// The variants carry the ids a management plane needs to point at the offending field;
/// `Display` is a complete sentence for a log line or an API error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not JSON, or does not fit the snapshot model.
    #[error("invalid configuration at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line where serde_json stopped.
        line: usize,
        /// 1-based column where serde_json stopped.
        column: usize,
        /// serde_json's description, without its own position suffix.
        message: String,
    },
    /// An upstream URL is not usable (the [`UrlError`] of [`ServiceUrl::parse`](super::ServiceUrl::parse)).
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More entities than the router can index.
    #[error("more than {limit} {what}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The most there may be.
        limit: usize,
    },
    /// Something wrong with an API as a whole.
    #[error("api `{api}`: {problem}")]
    Api {
        /// The API's id.
        api: String,
        /// What is wrong.
        problem: ApiProblem,
    },
    /// Something wrong with one operation of an API.
    #[error("api `{api}`, operation `{operation}`: {problem}")]
    Operation {
        /// The API's id.
        api: String,
        /// The operation's id.
        operation: String,
        /// What is wrong.
        problem: OperationProblem,
    },
    /// Something wrong with an API version set.
    #[error("version set `{set}`: {problem}")]
    VersionSet {
        /// The version set's id.
        set: String,
        /// What is wrong.
        problem: super::VersionSetProblem,
    },
    /// Something wrong with a backend.
    #[error("backend `{backend}`: {problem}")]
    Backend {
        /// The backend's id.
        backend: String,
        /// What is wrong.
        problem: EntityProblem,
    },
    /// Something wrong with a named value.
    #[error("named value `{name}`: {problem}")]
    NamedValue {
        /// The named value's name.
        name: String,
        /// What is wrong.
        problem: EntityProblem,
    },
    /// An API's OpenAPI document (`openapi`) whose contract does not compile.
    #[error("api `{api}`: {error}")]
    Contract {
        /// The API's id.
        api: String,
        /// Where in the document, and why.
        error: crate::policy::validate::contract::ContractError,
    },
    /// A policy document that does not compile.
    #[error("{owner} policy: {error}")]
    Policy {
        /// Whose document: `global`, `product 'p'`, `api 'a'`, `api 'a' operation 'o'`.
        owner: String,
        /// Where and why.
        error: crate::policy::error::PolicyError,
    },
    /// Something wrong with a product.
    #[error("product `{product}`: {problem}")]
    Product {
        /// The product's id.
        product: String,
        /// What is wrong.
        problem: EntityProblem,
    },
    /// Something wrong with a subscription.
    #[error("subscription `{subscription}`: {problem}")]
    Subscription {
        /// The subscription's id.
        subscription: String,
        /// What is wrong.
        problem: SubscriptionProblem,
    },
    /// Something wrong with a certificate (a chain with its private key).
    #[error("certificate `{certificate}`: {problem}")]
    Certificate {
        /// The certificate's id.
        certificate: String,
        /// What is wrong.
        problem: TlsProblem,
    },
    /// Something wrong with a CA certificate or its revocation lists.
    #[error("CA certificate `{ca}`: {problem}")]
    CaCertificate {
        /// The CA certificate's id.
        ca: String,
        /// What is wrong.
        problem: TlsProblem,
    },
    /// Something wrong with a custom hostname of the HTTPS listener.
    #[error("hostname `{hostname}`: {problem}")]
    Hostname {
        /// The hostname as configured.
        hostname: String,
        /// What is wrong.
        problem: TlsProblem,
    },
    /// Something wrong with a backend's `tls` settings.
    #[error("backend `{backend}` tls: {problem}")]
    BackendTls {
        /// The backend's id.
        backend: String,
        /// What is wrong.
        problem: TlsProblem,
    },
    /// The shared-state store setting is not usable.
    #[error("store: {0}")]
    Store(String),
}

/// What is wrong with a certificate, a CA, a hostname or a backend's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsProblem {
    /// The id is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another entity of the same kind has the same id (or hostname).
    #[error("duplicate id")]
    DuplicateId,
    /// A PEM field that does not hold what it should.
    #[error("{field}: {reason}")]
    InvalidPem {
        /// The field: `certificatePem`, `privateKeyPem` or `crlPem`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name is not a lowercase DNS name or a `*.` wildcard.
    #[error("not a lowercase DNS name or `*.` wildcard: {0}")]
    InvalidHostname(&'static str),
    /// A second hostname marked `defaultSslBinding` (there is at most one).
    #[error("defaultSslBinding is already set on hostname `{0}`")]
    SecondDefault(String),
    /// `certificateId` or `clientCertificateId` names no certificate of the snapshot.
    #[error("certificate `{0}` is not configured")]
    UnknownCertificate(String),
    /// `caCertificateIds` names no CA certificate of the snapshot.
    #[error("CA certificate `{0}` is not configured")]
    UnknownCaCertificate(String),
    /// A cipher suite name the gateway does not offer (the allowed names are
    /// [`CIPHER_SUITES`](super::CIPHER_SUITES)).
    #[error("unknown cipher suite `{0}`: use IANA names of TLS 1.2 ECDHE AEAD or TLS 1.3 suites, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")]
    UnknownCipherSuite(String),
    /// `serverName` is not a DNS name or an IP address.
    #[error("serverName `{0}` is not a DNS name or an IP address")]
    InvalidServerName(String),
}

/// What is wrong with a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionProblem {
    /// The id is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another subscription has the same id.
    #[error("duplicate id")]
    DuplicateId,
    /// The scope is not `/apis`, `/apis/{apiId}` or `/products/{productId}` of a known API or product.
    #[error("invalid scope `{0}`: use `/apis`, `/apis/{{apiId}}` or `/products/{{productId}}` of a configured API or product")]
    InvalidScope(String),
    /// A key is too short, too long or not visible ASCII.
    #[error("invalid {which} key: {reason}")]
    InvalidKey {
        /// `primary` or `secondary`.
        which: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The key is already a key of this or another subscription.
    #[error("{which} key is already used by subscription `{other}`")]
    DuplicateKey {
        /// `primary` or `secondary`.
        which: &'static str,
        /// The subscription that has it.
        other: String,
    },
}

/// What is wrong with an API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiProblem {
    /// The id is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another API has the same id.
    #[error("duplicate API id")]
    DuplicateId,
    /// The router cannot route it (path, duplicate prefix, hostname); the
    /// router's own message.
    #[error(transparent)]
    Route(#[from] ApiRouteProblem),
    /// Its version or revision fields do not fit the others'.
    #[error(transparent)]
    Version(#[from] super::VersionProblem),
    /// `protocols` is empty, so no request could ever reach the API.
    #[error("protocols must list http, https or both")]
    NoProtocols,
    /// Neither `serviceUrl` nor `backendId` is set.
    #[error("no upstream: set serviceUrl or backendId")]
    MissingUpstream,
    /// Both `serviceUrl` and `backendId` are set, so it is unclear which one wins.
    #[error("set either serviceUrl or backendId, not both")]
    ConflictingUpstream,
    /// `backendId` names no backend of the snapshot.
    #[error("backendId `{0}` refers to no backend")]
    UnknownBackend(String),
    /// `serviceUrl` cannot be parsed.
    #[error("invalid serviceUrl `{url}`: {reason}")]
    InvalidServiceUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `telemetry.samplingPercentage` above 100.
    #[error("telemetry.samplingPercentage must be between 0 and 100, not {0}")]
    InvalidSampling(u8),
    /// `timeoutSeconds` outside 1..=3600.
    #[error("timeoutSeconds must be between 1 and 3600, not {0}")]
    InvalidTimeout(u32),
    /// The API's `type` does not fit its backend or operations (a
    /// `websocket` API needs a `ws://`/`wss://` backend and one `GET`
    /// operation; an `http` API cannot have a `ws://` backend).
    #[error("{0}")]
    ApiType(&'static str),
    /// A subscription key parameter name is unusable.
    #[error("invalid subscription key {which} name `{name}`: {reason}")]
    InvalidKeyParameterName {
        /// `header` or `query`.
        which: &'static str,
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What is wrong with an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationProblem {
    /// The id is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another operation of the same API has the same id.
    #[error("duplicate operation id")]
    DuplicateId,
    /// The router cannot route it (method, URL template, a duplicate); the
    /// router's own message.
    #[error(transparent)]
    Route(#[from] OperationRouteProblem),
}

/// What is wrong with a backend or a named value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityProblem {
    /// The id or name is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another entity of the same kind has the same id or name.
    #[error("duplicate id")]
    DuplicateId,
    /// The backend URL cannot be parsed.
    #[error("invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A product lists an API that is not configured.
    #[error("unknown api `{0}`")]
    UnknownApi(String),
}

impl ConfigError {
    /// Wraps serde_json's error, keeping its position apart from its message.
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; the position is
        // kept as fields instead so the message does not say it twice.
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ConfigError::Json {
            line: err.line(),
            column: err.column(),
            message,
        }
    }

    /// Builds an API error.
    pub(crate) fn api(api: &str, problem: ApiProblem) -> Self {
        ConfigError::Api {
            api: api.to_owned(),
            problem,
        }
    }

    /// Builds an operation error.
    pub(crate) fn operation(api: &str, operation: &str, problem: OperationProblem) -> Self {
        ConfigError::Operation {
            api: api.to_owned(),
            operation: operation.to_owned(),
            problem,
        }
    }
}

impl From<UrlError> for ConfigError {
    fn from(e: UrlError) -> Self {
        ConfigError::InvalidUrl {
            url: e.url,
            reason: e.reason,
        }
    }
}

// The router reports in its own terms; the configuration wraps them.
impl From<BuildError> for ConfigError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::TooMany { what, limit } => ConfigError::TooMany { what, limit },
            BuildError::Api { api, problem } => ConfigError::Api {
                api,
                problem: problem.into(),
            },
            BuildError::Operation {
                api,
                operation,
                problem,
            } => ConfigError::Operation {
                api,
                operation,
                problem: problem.into(),
            },
        }
    }
}
