//! The configuration loaded from a local file and reloaded when it changes; what a
//! check of the file means is the core's `ConfigReload`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::reload::compile_json;
pub use portcullis_core::config::SharedConfig;
use portcullis_core::config::{CompiledConfig, ConfigReload, FileStamp, Reload};
use smol::stream::StreamExt;

use crate::stop::Stop;

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
        /// What is wrong, with line and column where known.
        source: Box<portcullis_core::config::ConfigError>,
    },
}

/// Reads, parses and compiles a configuration file.
pub fn load_config(path: &Path) -> Result<CompiledConfig, ConfigError> {
    smol::block_on(load_config_bytes(path)).map(|(config, _)| config)
}

/// Like [`load_config`], also returning the bytes the configuration came from.
pub(crate) async fn load_config_bytes(
    path: &Path,
) -> Result<(CompiledConfig, Vec<u8>), ConfigError> {
    let bytes = smol::fs::read(path)
        .await
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    let config = compile_json(&bytes).map_err(|source| invalid(path, source))?;
    Ok((config, bytes))
}

fn invalid(path: &Path, source: portcullis_core::config::ConfigError) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// The file's stamp (see [`FileStamp`]), if it can be stat'ed.
async fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = smol::fs::metadata(path).await.ok()?;
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

/// Checks `path` every `interval` and puts each new valid version in force; an
/// invalid version is logged and the configuration in force stays.
pub(crate) async fn watch(
    path: PathBuf,
    shared: Arc<SharedConfig>,
    loaded: Vec<u8>,
    interval: Duration,
    stop: Stop,
) {
    let mut reload = ConfigReload::new(loaded);
    let mut ticker = smol::Timer::interval(interval);
    loop {
        let stopped = smol::future::or(
            async {
                stop.cancelled().await;
                true
            },
            async {
                ticker.next().await;
                false
            },
        )
        .await;
        if stopped {
            return;
        }
        if !reload.needs_read(stamp(&path).await) {
            continue;
        }
        let bytes = match smol::fs::read(&path).await {
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
