//! Calls the gateway makes itself (`send-request`, `send-one-way-request`, the
//! OpenID metadata of `validate-jwt`), without IO. This module holds what every
//! call shares: the request, where it goes, and how it failed; [`exchange`] is
//! the machine that writes one call's bytes and reads its response; [`openid`]
//! decides when and how OpenID key sets are fetched.
//!
//! The adapter opens the connection named by [`CalloutTarget`] (reusing a pooled one
//! under [`CalloutTarget::pool_key`]), writes [`CalloutExchange::pending`], feeds what
//! it reads to [`CalloutExchange::handle_data`] (an empty slice at end of stream)
//! and gets a [`Completed`] response back.

pub mod exchange;
pub mod openid;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::http::percent::encode_target;
use crate::http::{CodecError, Scheme, ServiceUrl};

pub use exchange::{CalloutExchange, CalloutLimits, Completed};
pub use openid::{
    DiscoveryError, FetchedKeySet, KeySetFetch, KeySetStep, RefreshPolicy, RefreshSchedule,
    MAX_DISCOVERY_DOCUMENT,
};

/// A call the gateway makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header fields to send (Host, Content-Length and hop-by-hop fields are the
    /// exchange's own: a Host given here replaces the URL's, the others are dropped).
    pub headers: Vec<(String, String)>,
    /// Request body (may be empty).
    pub body: Bytes,
    /// How long the whole call (name resolution, connect, TLS, exchange) may take.
    pub timeout: Duration,
}

impl CalloutRequest {
    /// A `GET` of `url` without extra fields.
    pub fn get(url: impl Into<String>, timeout: Duration) -> Self {
        CalloutRequest {
            method: "GET".to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout,
        }
    }

    /// Parses the URL and encodes the request: the target to connect to and the
    /// exchange to run on that connection.
    pub fn prepare(
        &self,
        limits: CalloutLimits,
    ) -> Result<(CalloutTarget, CalloutExchange), CalloutError> {
        let target = CalloutTarget::parse(&self.url)?;
        let exchange = CalloutExchange::new(self, &target, limits)?;
        Ok((target, exchange))
    }
}

/// Why a callout could not be made or its response not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    /// The URL is not an absolute `http`/`https` URL the gateway can call.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The method is not an HTTP token.
    #[error("invalid method `{0}`")]
    InvalidMethod(String),
    /// A header field name or value cannot be sent.
    #[error("invalid header field `{name}`: {reason}")]
    InvalidHeader {
        /// The field name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection closed before any byte of a response arrived.
    #[error("connection closed before a response")]
    NoResponse,
    /// The response is not valid HTTP/1.1, is truncated, or breaks a size limit.
    #[error("invalid response: {0}")]
    Response(#[from] CodecError),
    /// More interim (1xx) responses than `CalloutLimits::max_interim`.
    #[error("more than {0} interim responses")]
    TooManyInterim(usize),
    /// A `101 Switching Protocols` the request did not ask for.
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedUpgrade,
}

impl CalloutError {
    /// The class of failure, as `context.LastError` needs it.
    pub fn kind(&self) -> CalloutFailureKind {
        match self {
            CalloutError::InvalidUrl { .. }
            | CalloutError::InvalidMethod(_)
            | CalloutError::InvalidHeader { .. } => CalloutFailureKind::InvalidRequest,
            CalloutError::NoResponse | CalloutError::Response(CodecError::Truncated) => {
                CalloutFailureKind::Connection
            }
            CalloutError::Response(_)
            | CalloutError::TooManyInterim(_)
            | CalloutError::UnexpectedUpgrade => CalloutFailureKind::Protocol,
        }
    }
}

/// Why a call made by an adapter did not produce a response: what the adapter
/// saw (its IO errors) and what the exchange found, in one error both adapters
/// return.
#[derive(Debug, thiserror::Error)]
pub enum CalloutFailure {
    /// The request could not be built (URL, method or header field).
    #[error(transparent)]
    InvalidRequest(CalloutError),
    /// The call did not complete within the request's timeout.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// No connection: name resolution, TCP connect or TLS handshake failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What failed.
        source: std::io::Error,
    },
    /// The connection failed while the exchange was under way.
    #[error("connection to {target} failed: {source}")]
    Io {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What failed.
        source: std::io::Error,
    },
    /// The connection closed early, or the response was invalid or too large.
    #[error("{target}: {source}")]
    Response {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What was wrong.
        source: CalloutError,
    },
}

impl CalloutFailure {
    /// The class of failure, for `context.LastError` and logs.
    pub fn kind(&self) -> CalloutFailureKind {
        match self {
            CalloutFailure::InvalidRequest(_) => CalloutFailureKind::InvalidRequest,
            CalloutFailure::Timeout(_) => CalloutFailureKind::Timeout,
            CalloutFailure::Connect { .. } => CalloutFailureKind::Connect,
            CalloutFailure::Io { .. } => CalloutFailureKind::Connection,
            CalloutFailure::Response { source, .. } => source.kind(),
        }
    }
}

/// How a callout failed, in the classes a policy's error handling tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalloutFailureKind {
    /// The request could not be built (URL, method or header field).
    InvalidRequest,
    /// No connection could be made: name resolution, TCP connect or TLS handshake.
    Connect,
    /// The call did not complete within its timeout.
    Timeout,
    /// The connection failed or closed before the response was complete.
    Connection,
    /// The response was not valid HTTP/1.1 or broke a size limit.
    Protocol,
}

impl CalloutFailureKind {
    /// A short stable name for logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CalloutFailureKind::InvalidRequest => "invalid-request",
            CalloutFailureKind::Connect => "connect",
            CalloutFailureKind::Timeout => "timeout",
            CalloutFailureKind::Connection => "connection",
            CalloutFailureKind::Protocol => "protocol",
        }
    }

    /// `context.LastError.Reason` for a `send-request` that failed this way.
    pub fn last_error_reason(self) -> &'static str {
        match self {
            CalloutFailureKind::InvalidRequest => "InvalidRequest",
            CalloutFailureKind::Connect | CalloutFailureKind::Connection => "ConnectionFailure",
            CalloutFailureKind::Timeout => "Timeout",
            CalloutFailureKind::Protocol => "InvalidResponse",
        }
    }
}

/// Where a callout goes: the connection to open and the request target to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutTarget {
    /// Scheme, host, port, Host value (`authority`) and pool key; `base_path` is empty.
    pub service: ServiceUrl,
    /// Request target in origin form (`/a/b?x=1`), `/` when the URL has no path,
    /// characters not allowed in a request target percent-encoded, fragment dropped.
    pub path_and_query: String,
}

impl CalloutTarget {
    /// Parses an absolute `http`/`https` URL (no user info; any fragment is dropped).
    pub fn parse(url: &str) -> Result<CalloutTarget, CalloutError> {
        let invalid = |reason: &'static str| CalloutError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let trimmed = url.trim_matches(|c: char| c.is_ascii_whitespace());
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme (http:// or https://)"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let service =
            ServiceUrl::parse(&format!("{scheme}://{authority}")).map_err(|e| invalid(e.reason))?;
        let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
        let mut path_and_query = String::with_capacity(tail.len() + 1);
        if !tail.starts_with('/') {
            path_and_query.push('/');
        }
        encode_target(tail, &mut path_and_query);
        Ok(CalloutTarget {
            service,
            path_and_query,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.service.scheme
    }

    /// Host to connect to (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.service.host
    }

    /// Port to connect to.
    pub fn port(&self) -> u16 {
        self.service.port
    }

    /// `scheme://host:port`: connections to the same key are interchangeable.
    pub fn pool_key(&self) -> &Arc<str> {
        &self.service.pool_key
    }
}
