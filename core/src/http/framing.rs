//! How a message body is delimited (RFC 9112 section 6).

/// How the body of a parsed message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (never 0: a zero length is `Empty`).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Responses only: the body runs until the connection closes.
    CloseDelimited,
}
