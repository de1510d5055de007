//! A configuration file, loaded at start and watched: the error a file gives,
//! and what a check of the file leads to once it has been read (what
//! [`ConfigReload`] decided, put in force or logged). The watch task stats and
//! reads the file on its timer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::reload::compile_json;
use portcullis_core::config::{CompiledConfig, ConfigError, ConfigReload, FileStamp, Reload};

use crate::nudge::Nudged;
use crate::runtime::Runtime;
use crate::shared_config::SharedConfig;
use crate::stop::Stop;

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

/// Decides what one read of a watched file means (`read`: the adapter's read,
/// after [`ConfigReload::needs_read`] asked for it, or on a nudge). Parses and
/// compiles: slow for a large configuration, so the watcher runs it as
/// blocking work.
pub fn check_read(
    reload: &mut ConfigReload,
    read: std::io::Result<Vec<u8>>,
) -> std::io::Result<Reload> {
    read.map(|bytes| reload.handle_contents(bytes))
}

/// Acts on what [`check_read`] decided: a new valid version with a higher
/// revision goes in force in `shared`; an unreadable or invalid one, or one whose
/// revision is not above the one in force, is logged and the configuration in
/// force stays.
pub fn apply_checked(path: &Path, checked: std::io::Result<Reload>, shared: &SharedConfig) {
    let outcome = match checked {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(path = %path.display(), error = %err, "configuration file unreadable; keeping the configuration in force");
            return;
        }
    };
    match outcome {
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
        Reload::Stale { revision, in_force } => {
            tracing::warn!(
                path = %path.display(),
                revision,
                in_force,
                "configuration refused: its revision {revision} is not above revision {in_force} in force; keeping the configuration in force"
            );
        }
    }
}

/// Reads, parses and compiles a configuration file.
pub fn load_config(path: &Path) -> Result<CompiledConfig, ConfigFileError> {
    load_config_bytes(path).map(|(config, _)| config)
}

/// Like [`load_config`], also returning the bytes the configuration came from.
pub(crate) fn load_config_bytes(path: &Path) -> Result<(CompiledConfig, Vec<u8>), ConfigFileError> {
    load_file(path, std::fs::read(path))
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

/// Watches `path` every `interval`, and at once when `nudged` (SIGHUP), and
/// puts each new valid version in force; an invalid version is logged and the
/// configuration in force stays. `loaded` is the content the configuration in
/// force came from: the first check compares against it, so a change made
/// between loading and the first check is not missed. Reading, parsing and
/// compiling run as blocking work, off the threads that serve requests.
pub(crate) async fn watch_file<R: Runtime>(
    rt: R,
    path: PathBuf,
    shared: Arc<SharedConfig>,
    loaded: Vec<u8>,
    interval: Duration,
    nudged: Nudged,
    stop: Stop,
) {
    let in_force = shared.revision().unwrap_or(0);
    let mut reload = ConfigReload::new(loaded, in_force);
    // The first check is at once, then every `interval`; a late tick delays the
    // ones after it rather than bunching them up.
    let mut next = rt.now();
    loop {
        let woke = futures_lite::future::or(
            async {
                rt.timer(next).await;
                false
            },
            async {
                nudged.recv().await;
                true
            },
        );
        let Some(was_nudged) = crate::runtime::until_stopped(&stop, woke).await else {
            return;
        };
        let now = rt.now();
        if !was_nudged {
            next += interval;
            if next < now {
                next = now + interval;
            }
        }
        let target = path.clone();
        let stamped = rt.blocking(move || stamp(&target)).await.ok().flatten();
        // A nudge reads the file even if its stamp looks the same (an edit
        // within the clock's tick that kept the length).
        if !reload.needs_read(stamped) && !was_nudged {
            continue;
        }
        if was_nudged {
            tracing::info!(path = %path.display(), "reloading the configuration file (SIGHUP)");
        }
        let target = path.clone();
        let checked = rt
            .blocking(move || {
                let read = std::fs::read(&target);
                let outcome = check_read(&mut reload, read);
                (reload, outcome)
            })
            .await;
        let checked = match checked {
            Ok((back, checked)) => {
                reload = back;
                checked
            }
            Err(panic) => {
                // The compiler panicked: start over from the revision in force,
                // so the next change of the file is read again.
                tracing::error!(path = %path.display(), error = %panic, "checking the configuration file failed; keeping the configuration in force");
                reload = ConfigReload::new(Vec::new(), shared.revision().unwrap_or(0));
                continue;
            }
        };
        apply_checked(&path, checked, &shared);
    }
}
