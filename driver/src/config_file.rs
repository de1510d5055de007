//! A configuration file, as both adapters load and watch it: the error a file
//! gives, and what a check of the file leads to once the adapter has read it
//! (what [`ConfigReload`] decided, put in force or logged). The adapter stats and
//! reads the file on its timer.

use std::path::{Path, PathBuf};

use portcullis_core::config::reload::compile_json;
use portcullis_core::config::{CompiledConfig, ConfigError, ConfigReload, Reload};

use crate::shared_config::SharedConfig;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file does not hold a valid configuration.
    #[error("invalid configuration in {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where known (boxed: errors are rare
        /// and the variant would otherwise bloat every `Result`).
        source: Box<ConfigError>,
    },
}

impl ConfigFileError {
    /// The file at `path` does not hold a valid configuration.
    pub fn invalid(path: &Path, source: ConfigError) -> Self {
        ConfigFileError::Invalid {
            path: path.to_owned(),
            source: Box::new(source),
        }
    }
}

/// Compiles what was read from `path` (`read`: the adapter's read of the file),
/// also returning the bytes the configuration came from.
pub fn load_file(
    path: &Path,
    read: std::io::Result<Vec<u8>>,
) -> Result<(CompiledConfig, Vec<u8>), ConfigFileError> {
    let bytes = read.map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = compile_json(&bytes).map_err(|source| ConfigFileError::invalid(path, source))?;
    Ok((config, bytes))
}

/// Logs that the configuration at `path` was loaded at start.
pub fn log_loaded(path: &Path, revision: u64) {
    tracing::info!(revision, path = %path.display(), "configuration loaded");
}

/// Acts on one read of a watched file (`read`: the adapter's read, after
/// [`ConfigReload::needs_read`] asked for it): a new valid version goes in force in
/// `shared`; an unreadable or invalid one is logged and the configuration in
/// force stays.
pub fn handle_read(
    reload: &mut ConfigReload,
    path: &Path,
    read: std::io::Result<Vec<u8>>,
    shared: &SharedConfig,
) {
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(path = %path.display(), error = %err, "configuration file unreadable; keeping the configuration in force");
            return;
        }
    };
    match reload.handle_contents(bytes) {
        Reload::Unchanged => {}
        Reload::Apply(config) => {
            let revision = config.revision();
            shared.store(*config);
            tracing::info!(path = %path.display(), revision, "configuration reloaded");
        }
        Reload::Rejected(source) => {
            let err = ConfigFileError::invalid(path, source);
            tracing::error!(error = %err, "configuration rejected; keeping the configuration in force");
        }
    }
}
