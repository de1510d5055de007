//! Why a store operation failed, in terms the HTTP layer maps to status codes.

use portcullis_core::config::ConfigError;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entity (or policy document) does not exist: 404.
    #[error("{0} not found")]
    NotFound(String),
    /// `If-Match` or `If-None-Match` did not hold: 412.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The request body or an argument is not acceptable: 400.
    #[error("{0}")]
    Invalid(String),
    /// The candidate configuration does not compile: 400, with the policy's position if any.
    #[error("{0}")]
    Config(Box<ConfigError>),
    /// The entity is still referenced (or in use): 409.
    #[error("{0}")]
    Conflict(String),
    /// A gateway token that is malformed, expired, forged or for another gateway: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// The database failed: 500.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system failed: 500.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data that cannot be read back: 500.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl From<ConfigError> for StoreError {
    fn from(err: ConfigError) -> Self {
        StoreError::Config(Box::new(err))
    }
}
