//! HTTP/1.1 message codec: heads, body framing, chunked coding and the proxy header rules;
//! plus the plain HTTP data the rest of core shares (owned messages, upstream URLs,
//! percent-encoding).
//!
//! Everything here works on bytes handed in by the caller; nothing reads a socket.
//! Parsed heads keep their raw bytes (`Bytes`) and refer to fields by offset, so a
//! request can be forwarded without copying its headers into owned strings.

pub mod body;
pub mod chunked;
pub mod encode;
pub mod error;
pub mod field_rules;
pub mod framing;
pub mod head;
pub mod head_scan;
pub mod hop;
pub(crate) mod host;
pub mod limits;
pub mod message;
pub mod percent;
pub mod service_url;
mod syntax;
#[cfg(test)]
mod tests;
pub mod upstream_tls;
pub mod websocket;

pub use body::{BodyDecoder, BodyEvent};
pub use error::CodecError;
pub use framing::BodyFraming;
pub use head::{HeaderSpan, RequestHead, ResponseHead, Span, Version};
pub use head_scan::HeadScanner;
pub use limits::Limits;
pub use message::{Headers, Response, Url};
pub use service_url::{Scheme, ServiceUrl, UrlError};
pub use upstream_tls::{ClientIdentity, UpstreamTls};
