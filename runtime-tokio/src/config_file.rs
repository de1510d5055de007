//! The configuration in force, loaded from a local file and reloaded when it changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::proxy::ConfigSource;
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

/// The configuration in force, swapped atomically on reload.
///
/// Requests keep the `Arc` they started with, so a reload never changes the
/// configuration under a request in flight.
#[derive(Debug, Default)]
pub struct SharedConfig {
    current: ArcSwapOption<CompiledConfig>,
}

impl SharedConfig {
    /// A holder with this configuration (or none yet).
    pub fn new(config: Option<CompiledConfig>) -> Self {
        SharedConfig {
            current: ArcSwapOption::new(config.map(Arc::new)),
        }
    }

    /// Puts a new configuration in force.
    pub fn store(&self, config: CompiledConfig) {
        self.current.store(Some(Arc::new(config)));
    }

    /// Puts a compiled configuration in force, as handed out by the sync agent.
    pub fn store_shared(&self, config: Arc<CompiledConfig>) {
        self.current.store(Some(config));
    }

    /// Whether a configuration is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// The revision in force, if any.
    pub fn revision(&self) -> Option<u64> {
        self.current.load().as_ref().map(|c| c.revision())
    }
}

impl ConfigSource for SharedConfig {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        self.current.load_full()
    }
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
    Snapshot::from_json(bytes)
        .and_then(CompiledConfig::compile)
        .map_err(|source| ConfigError::Invalid {
            path: path.to_owned(),
            source: Box::new(source),
        })
}

/// What identifies a version of the file cheaply; the content decides in the end.
///
/// The modification time alone is not enough: it ticks coarsely and `cp -p` or
/// `rsync -t` keep an old one, so the inode (a new file renamed into place) and the
/// change time (which no tool can set back) are part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: meta.ino(),
        #[cfg(unix)]
        changed: (meta.ctime(), meta.ctime_nsec()),
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
    let mut last_stamp = None;
    let mut last_bytes = Some(loaded);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now_stamp = stamp(&path);
        if now_stamp == last_stamp {
            continue;
        }
        last_stamp = now_stamp;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "configuration file unreadable; keeping the configuration in force");
                continue;
            }
        };
        if last_bytes.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        match compile(&path, &bytes) {
            Ok(config) => {
                let revision = config.revision();
                shared.store(config);
                tracing::info!(path = %path.display(), revision, "configuration reloaded");
            }
            Err(err) => {
                tracing::error!(error = %err, "configuration rejected; keeping the configuration in force");
            }
        }
        last_bytes = Some(bytes);
    }
}
