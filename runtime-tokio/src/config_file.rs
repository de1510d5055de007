//! The configuration in force, loaded from a local file and reloaded when it changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::reload::compile_json;
pub use portcullis_core::config::SharedConfig;
use portcullis_core::config::{CompiledConfig, ConfigReload, FileStamp, Reload};
use tokio_util::sync::CancellationToken;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
        source: Box<portcullis_core::config::ConfigError>,
    },
}

/// Reads, parses and compiles a configuration file.
pub fn load_config(path: &Path) -> Result<CompiledConfig, ConfigError> {
    load_config_bytes(path).map(|(config, _)| config)
}

/// Like [`load_config`], also returning the bytes the configuration came from.
pub(crate) fn load_config_bytes(path: &Path) -> Result<(CompiledConfig, Vec<u8>), ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    compile(path, &bytes).map(|config| (config, bytes))
}

fn compile(path: &Path, bytes: &[u8]) -> Result<CompiledConfig, ConfigError> {
    compile_json(bytes).map_err(|source| invalid(path, source))
}

fn invalid(path: &Path, source: portcullis_core::config::ConfigError) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// The file's stamp (see [`FileStamp`]), if it can be stat'ed.
fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: meta.ino(),
        #[cfg(not(unix))]
        inode: 0,
        #[cfg(unix)]
        changed: (meta.ctime(), meta.ctime_nsec()),
        #[cfg(not(unix))]
        changed: (0, 0),
    })
}

/// Watches `path` every `interval` and puts each new valid version in force; an
/// invalid version is logged and the configuration in force stays. `loaded` is the
/// content the configuration in force came from: the first check compares against
/// it, so a change made between loading and the first check is not missed.
pub(crate) async fn watch(
    path: PathBuf,
    shared: Arc<SharedConfig>,
    loaded: Vec<u8>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut reload = ConfigReload::new(loaded);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !reload.needs_read(stamp(&path)) {
            continue;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "configuration file unreadable; keeping the configuration in force");
                continue;
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
                let err = invalid(&path, source);
                tracing::error!(error = %err, "configuration rejected; keeping the configuration in force");
            }
        }
    }
}
