//! XSLT 1.0 through libxslt, the reference XSLT 1.0 processor, with nothing
//! leaving the process: no document is ever loaded (`document()`,
//! `xsl:include`, `xsl:import` and external entities are refused) and the
//! security preferences forbid files and the network.
//!
//! The only crate of the workspace with `unsafe` code: the calls into the C
//! shim (`src/shim.c`), each with the invariant it relies on. A compiled
//! stylesheet is used by one thread at a time (a mutex), as libxslt allows.
//!
//! A machine without libxslt's headers (Debian's `libxslt1-dev`) still builds
//! the gateway: `build.rs` then leaves the engine out, and every stylesheet is
//! refused at compile time with a message saying why (`src/unavailable.rs`).

#[cfg(not(portcullis_no_libxslt))]
mod engine;
#[cfg(not(portcullis_no_libxslt))]
pub use engine::Stylesheet;

#[cfg(portcullis_no_libxslt)]
mod unavailable;
#[cfg(portcullis_no_libxslt)]
pub use unavailable::Stylesheet;

/// A stylesheet that does not compile, or a transformation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct XsltError {
    /// The first line libxslt or libxml2 named (1-based, in the text given).
    pub line: Option<u32>,
    /// libxslt's and libxml2's own words, one line per error.
    pub message: String,
}

#[cfg(all(test, not(portcullis_no_libxslt)))]
mod tests;
