//! Reloading a configuration file: when to read it again and whether what was
//! read replaces the configuration in force. The adapter stats and reads the file
//! on its timer; every decision is here.

use std::time::SystemTime;

use super::{CompiledConfig, ConfigError, Snapshot};

/// Parses and compiles a configuration document (JSON).
pub fn compile_json(bytes: &[u8]) -> Result<CompiledConfig, ConfigError> {
    Snapshot::from_json(bytes).and_then(CompiledConfig::compile)
}

/// What identifies a version of the file cheaply; the content decides in the end.
///
/// The modification time alone is not enough: it ticks coarsely and `cp -p` or
/// `rsync -t` keep an old one, so the inode (a new file renamed into place) and the
/// change time (which no tool can set back) are part of it. The adapter fills it
/// from the file's metadata (zero where the platform has no such field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// Last modification.
    pub modified: Option<SystemTime>,
    /// Length in bytes.
    pub len: u64,
    /// Inode number.
    pub inode: u64,
    /// Status change time (seconds, nanoseconds).
    pub changed: (i64, i64),
}

/// What a check of the file came to.
#[derive(Debug)]
pub enum Reload {
    /// The same content as the configuration in force: nothing to do.
    Unchanged,
    /// A new valid configuration: put it in force.
    Apply(Box<CompiledConfig>),
    /// A new version that does not load: log it, keep the configuration in force.
    Rejected(ConfigError),
}

/// Follows one configuration file.
#[derive(Debug)]
pub struct ConfigReload {
    last_stamp: Option<FileStamp>,
    last_bytes: Option<Vec<u8>>,
}

impl ConfigReload {
    /// `loaded` is the content the configuration in force came from: the first
    /// check compares against it, so a change made between loading and the first
    /// check is not missed.
    pub fn new(loaded: Vec<u8>) -> Self {
        ConfigReload {
            last_stamp: None,
            last_bytes: Some(loaded),
        }
    }

    /// Whether the file must be read, given its stamp now (`None`: it could not
    /// be stat'ed).
    pub fn needs_read(&mut self, stamp: Option<FileStamp>) -> bool {
        if stamp == self.last_stamp {
            return false;
        }
        self.last_stamp = stamp;
        true
    }

    /// What the file's content (read after [`needs_read`](Self::needs_read) said
    /// so) means.
    pub fn handle_contents(&mut self, bytes: Vec<u8>) -> Reload {
        if self.last_bytes.as_deref() == Some(bytes.as_slice()) {
            return Reload::Unchanged;
        }
        let outcome = match compile_json(&bytes) {
            Ok(config) => Reload::Apply(Box::new(config)),
            Err(err) => Reload::Rejected(err),
        };
        self.last_bytes = Some(bytes);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Option<FileStamp> {
        Some(FileStamp {
            modified: None,
            len,
            inode: 1,
            changed: (0, 0),
        })
    }

    #[test]
    fn reads_on_a_new_stamp_and_applies_new_content_only() {
        let one = br#"{"revision": 1}"#.to_vec();
        let two = br#"{"revision": 2}"#.to_vec();
        let mut reload = ConfigReload::new(one.clone());
        assert!(reload.needs_read(stamp(1)));
        assert!(matches!(reload.handle_contents(one), Reload::Unchanged));
        assert!(!reload.needs_read(stamp(1)));
        assert!(reload.needs_read(stamp(2)));
        match reload.handle_contents(two.clone()) {
            Reload::Apply(config) => assert_eq!(config.revision(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(reload.handle_contents(two), Reload::Unchanged));
        assert!(matches!(
            reload.handle_contents(b"{".to_vec()),
            Reload::Rejected(_)
        ));
        // A rejected version is not reported again until it changes.
        assert!(matches!(
            reload.handle_contents(b"{".to_vec()),
            Reload::Unchanged
        ));
    }
}
