//! The configuration backup on disk: one file in the backup directory, replaced
//! atomically (temporary file in the same directory, write, fsync, rename, fsync of
//! the directory), so a crash leaves either the old file or the new one.
//!
//! What is in the file (sealed, checksummed) is the core's business
//! (`portcullis_core::sync::backup`); this module only moves bytes, with smol's
//! file API.

use std::io;
use std::path::{Path, PathBuf};

use smol::io::AsyncWriteExt;

pub use portcullis_core::sync::backup_file::BACKUP_FILE_NAME;
use portcullis_core::sync::backup_file::{is_leftover_temp, read_result, temp_name};

/// The backup file of one gateway.
#[derive(Debug, Clone)]
pub(crate) struct BackupFile {
    dir: PathBuf,
    /// The file's name in `dir` (the backup's, or the kept token's).
    name: &'static str,
    /// Writes so far, shared with siblings: names each write's temporary file.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BackupFile {
    /// The backup file in `dir`.
    pub(crate) fn new(dir: &Path) -> Self {
        BackupFile {
            dir: dir.to_owned(),
            name: BACKUP_FILE_NAME,
            writes: Default::default(),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }

    /// The file named `name` in the same directory (the kept token's).
    pub(crate) fn sibling(&self, name: &'static str) -> Self {
        BackupFile {
            name,
            ..self.clone()
        }
    }

    /// Creates the directory if needed (owner-only on Unix) and removes temporary
    /// files a crash left behind.
    pub(crate) async fn prepare(&self) -> io::Result<()> {
        if !smol::fs::metadata(&self.dir)
            .await
            .is_ok_and(|m| m.is_dir())
        {
            let mut builder = smol::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use smol::fs::unix::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&self.dir).await?;
        }
        let mut entries = smol::fs::read_dir(&self.dir).await?;
        use smol::stream::StreamExt;
        while let Some(entry) = entries.next().await {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_leftover_temp(&name) {
                let _ = smol::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }

    /// The file's bytes, or `None` when there is no file yet.
    pub(crate) async fn read(&self) -> io::Result<Option<Vec<u8>>> {
        read_result(smol::fs::read(self.path()).await)
    }

    /// Replaces the file with `bytes`, atomically and durably.
    pub(crate) async fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(temp_name(
            std::process::id(),
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        let result = self.write_via(&temp, bytes).await;
        if result.is_err() {
            let _ = smol::fs::remove_file(&temp).await;
        }
        result
    }

    async fn write_via(&self, temp: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut options = smol::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use smol::fs::unix::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(temp).await?;
        file.write_all(bytes).await?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        smol::fs::rename(temp, self.path()).await?;
        sync_dir(&self.dir).await
    }
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
async fn sync_dir(dir: &Path) -> io::Result<()> {
    smol::fs::File::open(dir).await?.sync_all().await
}

/// Windows has no directory fsync; the rename is made durable by the file system.
#[cfg(not(unix))]
async fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn writes_replace_reads_and_leave_no_temporary_files() {
        smol::block_on(async {
            let root = tempfile::tempdir().unwrap();
            let file = BackupFile::new(&root.path().join("nested/backup"));
            file.prepare().await.unwrap();
            assert_eq!(file.read().await.unwrap(), None);
            file.write_atomically(b"one").await.unwrap();
            file.write_atomically(b"two").await.unwrap();
            assert_eq!(file.read().await.unwrap().as_deref(), Some(&b"two"[..]));
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
        })
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_failed_writes_leave_nothing() {
        smol::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let stale = dir.path().join(".config.backup.1.2.tmp");
            fs::write(&stale, b"half").unwrap();
            fs::write(dir.path().join("other"), b"kept").unwrap();
            let file = BackupFile::new(dir.path());
            file.prepare().await.unwrap();
            assert!(!stale.exists());
            assert!(dir.path().join("other").exists());
            // A directory where the file should be: reading and writing fail.
            fs::create_dir(file.path()).unwrap();
            assert!(file.read().await.is_err());
            assert!(file.write_atomically(b"x").await.is_err());
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        })
    }
}
