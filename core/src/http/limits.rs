//! Size limits applied while parsing messages.

/// Limits on message size; exceeding them is an error with a definite status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line + header fields + final CRLF) accepted; beyond it 431.
    pub max_head_bytes: usize,
    /// Most header fields accepted; beyond it 431.
    pub max_headers: usize,
    /// Largest request body accepted (payload bytes, after chunked decoding); beyond it 413.
    pub max_body_bytes: Option<u64>,
    /// Largest trailer section of a chunked body.
    pub max_trailer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            max_body_bytes: None,
            max_trailer_bytes: 8 * 1024,
        }
    }
}
