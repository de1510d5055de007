//! The configuration in force, loaded from a local file and reloaded when it changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::{CompiledConfig, ConfigReload, FileStamp};
use portcullis_driver::config_file as watch;
pub use portcullis_driver::config_file::ConfigFileError as ConfigError;
pub use portcullis_driver::shared_config::SharedConfig;
use tokio_util::sync::CancellationToken;

/// Reads, parses and compiles a configuration file.
pub fn load_config(path: &Path) -> Result<CompiledConfig, ConfigError> {
    load_config_bytes(path).map(|(config, _)| config)
}

/// Like [`load_config`], also returning the bytes the configuration came from.
pub(crate) fn load_config_bytes(path: &Path) -> Result<(CompiledConfig, Vec<u8>), ConfigError> {
    watch::load_file(path, std::fs::read(path))
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
pub(crate) async fn watch_file(
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
        watch::handle_read(&mut reload, &path, tokio::fs::read(&path).await, &shared);
    }
}
