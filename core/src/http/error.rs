//! Codec errors, each mapped to the status a server answers with.

/// Why a message could not be parsed; `status()` is what to answer a client with.
///
/// Every error is a framing error: after it the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Head larger than `Limits::max_head_bytes`.
    #[error("message head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// More header fields than `Limits::max_headers`.
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// Start line or header field not valid HTTP/1.1 (the reason names what).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// HTTP version other than 1.0 or 1.1.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// Transfer-Encoding and Content-Length in the same message.
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingWithContentLength,
    /// Content-Length not a decimal number, or several values that differ.
    #[error("invalid Content-Length: {0}")]
    InvalidContentLength(&'static str),
    /// Transfer-Encoding whose final coding is not chunked (or chunked twice).
    #[error("Transfer-Encoding must end with chunked")]
    ChunkedNotLast,
    /// A transfer coding other than chunked.
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// Bad chunk framing (the reason names what).
    #[error("invalid chunked body: {0}")]
    InvalidChunk(&'static str),
    /// Body larger than `Limits::max_body_bytes`.
    #[error("body larger than {0} bytes")]
    BodyTooLarge(u64),
    /// Connection closed before the message was complete.
    #[error("message truncated by end of stream")]
    Truncated,
}

impl CodecError {
    /// The status code a server answers a request that failed with this error.
    pub fn status(&self) -> u16 {
        match self {
            CodecError::HeadTooLarge(_) | CodecError::TooManyHeaders(_) => 431,
            CodecError::UnsupportedVersion => 505,
            CodecError::UnsupportedTransferCoding => 501,
            CodecError::BodyTooLarge(_) => 413,
            _ => 400,
        }
    }
}
