//! The configuration loaded from a local file and reloaded when it changes; what a
//! check of the file means is the core's `ConfigReload`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::{CompiledConfig, ConfigReload, FileStamp};
use portcullis_driver::config_file as watch;
pub use portcullis_driver::config_file::ConfigFileError as ConfigError;
pub use portcullis_driver::shared_config::SharedConfig;
use smol::stream::StreamExt;

use crate::stop::Stop;

/// Reads, parses and compiles a configuration file.
pub fn load_config(path: &Path) -> Result<CompiledConfig, ConfigError> {
    smol::block_on(load_config_bytes(path)).map(|(config, _)| config)
}

/// Like [`load_config`], also returning the bytes the configuration came from.
pub(crate) async fn load_config_bytes(
    path: &Path,
) -> Result<(CompiledConfig, Vec<u8>), ConfigError> {
    watch::load_file(path, smol::fs::read(path).await)
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
pub(crate) async fn watch_file(
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
        watch::handle_read(&mut reload, &path, smol::fs::read(&path).await, &shared);
    }
}
