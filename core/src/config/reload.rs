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
    /// A valid version whose revision is not above the one in force (an old file
    /// put back, or an edit that forgot to bump it): log it, keep the one in force.
    Stale {
        /// The file's revision.
        revision: u64,
        /// The revision in force.
        in_force: u64,
    },
}

/// Follows one configuration file.
#[derive(Debug)]
pub struct ConfigReload {
    last_stamp: Option<FileStamp>,
    last_bytes: Option<Vec<u8>>,
    in_force: u64,
}

impl ConfigReload {
    /// `loaded` is the content the configuration in force came from: the first
    /// check compares against it, so a change made between loading and the first
    /// check is not missed. `revision` is the revision in force: only a file with a
    /// higher one replaces it.
    pub fn new(loaded: Vec<u8>, revision: u64) -> Self {
        ConfigReload {
            last_stamp: None,
            last_bytes: Some(loaded),
            in_force: revision,
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
        // The revision is checked before compiling: a stale file costs a parse only.
        let outcome = match Snapshot::from_json(&bytes) {
            Ok(snapshot) if snapshot.revision <= self.in_force => Reload::Stale {
                revision: snapshot.revision,
                in_force: self.in_force,
            },
            Ok(snapshot) => match CompiledConfig::compile(snapshot) {
                Ok(config) => {
                    self.in_force = config.revision();
                    Reload::Apply(Box::new(config))
                }
                Err(err) => Reload::Rejected(err),
            },
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
        let mut reload = ConfigReload::new(one.clone(), 1);
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

    #[test]
    fn a_revision_not_above_the_one_in_force_is_refused() {
        let three = br#"{"revision": 3}"#.to_vec();
        let mut reload = ConfigReload::new(three, 3);
        // Equal revision with other content, then a lower one: both refused.
        match reload.handle_contents(br#"{"revision": 3, "apis": []}"#.to_vec()) {
            Reload::Stale { revision, in_force } => assert_eq!((revision, in_force), (3, 3)),
            other => panic!("{other:?}"),
        }
        match reload.handle_contents(br#"{"revision": 2}"#.to_vec()) {
            Reload::Stale { revision, in_force } => assert_eq!((revision, in_force), (2, 3)),
            other => panic!("{other:?}"),
        }
        match reload.handle_contents(br#"{"revision": 4}"#.to_vec()) {
            Reload::Apply(config) => assert_eq!(config.revision(), 4),
            other => panic!("{other:?}"),
        }
        // Now 4 is in force: 4 again with other content is stale.
        assert!(matches!(
            reload.handle_contents(br#"{"revision": 4, "apis": []}"#.to_vec()),
            Reload::Stale { in_force: 4, .. }
        ));
        // An invalid higher revision is rejected and does not move the one in force.
        assert!(matches!(
            reload.handle_contents(br#"{"revision": 9, "apis": 1}"#.to_vec()),
            Reload::Rejected(_)
        ));
        assert!(matches!(
            reload.handle_contents(br#"{"revision": 5}"#.to_vec()),
            Reload::Apply(_)
        ));
    }
}
