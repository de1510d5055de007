//! The configuration backup on disk: one file in the backup directory, replaced
//! atomically (temporary file in the same directory, write, fsync, rename, fsync of
//! the directory), so a crash leaves either the old file or the new one.
//!
//! What is in the file (sealed, checksummed) is the core's business
//! (`portcullis_core::sync::backup`); this module only moves bytes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::Disk;
#[cfg(test)]
use crate::disk::OsDisk;

pub use portcullis_core::sync::backup_file::BACKUP_FILE_NAME;
use portcullis_core::sync::backup_file::{is_leftover_temp, read_result, temp_name};

/// The backup file of one gateway.
#[derive(Debug, Clone)]
pub struct BackupFile {
    dir: PathBuf,
    /// The file's name in `dir` (the backup's, or the kept token's).
    name: &'static str,
    /// Writes so far, shared with siblings: names each write's temporary file.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    disk: Arc<dyn Disk>,
}

impl BackupFile {
    /// The backup file in `dir` on the OS file system.
    #[cfg(test)]
    fn new(dir: &Path) -> Self {
        BackupFile::on(Arc::new(OsDisk), dir)
    }

    /// The backup file in `dir` on `disk`.
    pub fn on(disk: Arc<dyn Disk>, dir: &Path) -> Self {
        BackupFile {
            dir: dir.to_owned(),
            name: BACKUP_FILE_NAME,
            writes: Default::default(),
            disk,
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }

    /// The file named `name` in the same directory (the kept token's).
    pub fn sibling(&self, name: &'static str) -> Self {
        BackupFile {
            name,
            ..self.clone()
        }
    }

    /// Creates the directory if needed (owner-only on Unix) and removes temporary
    /// files a crash left behind.
    pub fn prepare(&self) -> io::Result<()> {
        self.disk.create_dir_all(&self.dir)?;
        for name in self.disk.list(&self.dir)? {
            if is_leftover_temp(&name) {
                let _ = self.disk.remove_file(&self.dir.join(name));
            }
        }
        Ok(())
    }

    /// The file's bytes, or `None` when there is no file yet.
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        read_result(self.disk.read(&self.path()))
    }

    /// Replaces the file with `bytes`, atomically and durably.
    pub fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(temp_name(
            std::process::id(),
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        let result = self.write_via(&temp, bytes);
        if result.is_err() {
            let _ = self.disk.remove_file(&temp);
        }
        result
    }

    /// Overwrites the file in place, unsynced: broken on purpose
    /// (`Sabotage::write_backup_in_place`).
    #[cfg(feature = "sabotage")]
    pub fn overwrite_unsynced(&self, bytes: &[u8]) -> io::Result<()> {
        self.disk.overwrite_unsynced(&self.path(), bytes)
    }

    fn write_via(&self, temp: &Path, bytes: &[u8]) -> io::Result<()> {
        self.disk.write_new_synced(temp, bytes)?;
        self.disk.rename(temp, &self.path())?;
        self.disk.sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn writes_replace_reads_and_leave_no_temporary_files() {
        let root = tempfile::tempdir().unwrap();
        let file = BackupFile::new(&root.path().join("nested/backup"));
        file.prepare().unwrap();
        assert_eq!(file.read().unwrap(), None);
        file.write_atomically(b"one").unwrap();
        file.write_atomically(b"two").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<String> = fs::read_dir(root.path().join("nested/backup"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [BACKUP_FILE_NAME]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn leftovers_of_a_crash_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".config.backup.1.2.tmp");
        fs::write(&stale, b"half").unwrap();
        fs::write(dir.path().join("other"), b"kept").unwrap();
        BackupFile::new(dir.path()).prepare().unwrap();
        assert!(!stale.exists());
        assert!(dir.path().join("other").exists());
    }

    #[test]
    fn an_unreadable_file_is_an_error_not_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = BackupFile::new(dir.path());
        fs::create_dir(file.path()).unwrap();
        assert!(file.read().is_err());
        assert!(file.write_atomically(b"x").is_err());
        // The failed write left nothing behind.
        let count = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 1);
    }
}
