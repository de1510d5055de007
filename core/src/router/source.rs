//! What a router is built from, and why building one fails: the router's own
//! view of APIs and operations, so routing does not depend on the
//! configuration model (the compiled configuration sits above the router and
//! turns these errors into its own).

use super::TemplateError;

/// What the router needs to know of one API.
pub trait ApiSource {
    /// The API's operations.
    type Operation: OperationSource;
    /// The API's id, for errors.
    fn id(&self) -> &str;
    /// The path prefix as configured (leading and trailing `/` allowed).
    fn path(&self) -> &str;
    /// Hostnames the API is restricted to; empty: any host.
    fn hostnames(&self) -> &[String];
    /// The operations, in order (a match names its index).
    fn operations(&self) -> &[Self::Operation];
    /// Its version and revision, when it has them.
    fn route_key(&self) -> RouteKey<'_> {
        RouteKey::PLAIN
    }
}

/// What the router needs to know of one operation.
pub trait OperationSource {
    /// The operation's id, for errors.
    fn id(&self) -> &str;
    /// `*` or an HTTP method.
    fn method(&self) -> &str;
    /// The URL template, e.g. `/users/{id}`.
    fn url_template(&self) -> &str;
}

/// Why a router could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// More APIs or operations than the router can index.
    #[error("more than {limit} {what}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The most there may be.
        limit: usize,
    },
    /// Something wrong with an API's path or hostnames.
    #[error("api `{api}`: {problem}")]
    Api {
        /// The API's id.
        api: String,
        /// What is wrong.
        problem: ApiRouteProblem,
    },
    /// Something wrong with one operation's method or template.
    #[error("api `{api}`, operation `{operation}`: {problem}")]
    Operation {
        /// The API's id.
        api: String,
        /// The operation's id.
        operation: String,
        /// What is wrong.
        problem: OperationRouteProblem,
    },
}

/// What keeps an API from being routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiRouteProblem {
    /// The path cannot be routed.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another API already serves this path on the same host (or on any host).
    #[error("path `/{path}` {} is already used by api `{other}`", host_phrase(.host))]
    DuplicatePrefix {
        /// The other API's id.
        other: String,
        /// The hostname both claim, `None` for APIs without hostnames.
        host: Option<String>,
        /// The normalized path both claim.
        path: String,
    },
    /// Another API of the same version set has the same version at this path.
    #[error("version `{version}` at path `/{path}` is already api `{other}`")]
    DuplicateVersion {
        /// The other API's id.
        other: String,
        /// The version both claim (`""`: the default).
        version: String,
        /// The normalized path.
        path: String,
    },
    /// A hostname is not a DNS name or IP address.
    #[error("invalid hostname `{hostname}`: {reason}")]
    InvalidHostname {
        /// The hostname as configured.
        hostname: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What keeps an operation from being routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationRouteProblem {
    /// The method is not an HTTP token (or `*`).
    #[error("invalid method `{method}`: {reason}")]
    InvalidMethod {
        /// The method as configured.
        method: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URL template cannot be matched.
    #[error("invalid urlTemplate `{template}`: {reason}")]
    InvalidTemplate {
        /// The template as configured.
        template: String,
        /// What is wrong with it.
        reason: TemplateError,
    },
    /// Another operation has the same method and the same template shape.
    #[error("same method and URL template as operation `{other}`")]
    Duplicate {
        /// The other operation's id.
        other: String,
    },
}

fn host_phrase(host: &Option<String>) -> String {
    match host {
        Some(h) => format!("on host `{h}`"),
        None => "on any host".to_owned(),
    }
}

/// Where an API is routed besides its path: as one version of a version set,
/// and as one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteKey<'a> {
    /// The version this API is of a version set; `None` for an API without one.
    pub version: Option<VersionKey<'a>>,
    /// The revision number: the API is also routed at `<prefix>;rev=N`.
    pub revision: Option<u32>,
    /// Routed at its plain prefix too (the current revision); a non-current
    /// revision is reachable only with `;rev=N`.
    pub current: bool,
}

impl RouteKey<'_> {
    /// An API without versions or revisions.
    pub const PLAIN: RouteKey<'static> = RouteKey {
        version: None,
        revision: None,
        current: true,
    };
}

/// One version of a version set, as the router places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionKey<'a> {
    /// The version set's id: versions share a path only within one set.
    pub set: &'a str,
    /// How a request names its version.
    pub scheme: VersionScheme<'a>,
    /// The version identifier; `""` is APIM's "Original" version.
    pub version: &'a str,
    /// Requests that name no version reach this one.
    pub default: bool,
}

/// How a request names the version it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionScheme<'a> {
    /// A path segment right after the API's path: `/<path>/<version>/...`.
    Segment,
    /// A request header of this name.
    Header(&'a str),
    /// A query parameter of this name.
    Query(&'a str),
}

/// What the router reads of a request to pick a version, besides its path.
pub trait VersionInput {
    /// The first value of header `name` (case-insensitive), if present.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&[u8]>;
}

/// A request without headers or query: only path-routed versions and defaults match.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVersionInput;

impl VersionInput for NoVersionInput {
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn query(&self) -> Option<&[u8]> {
        None
    }
}
