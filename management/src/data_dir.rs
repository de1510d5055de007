//! The data directory's permissions: it holds gateway signing keys, subscription
//! keys, secret named values and TLS keys, so it is created owner-only (0700) and
//! every file written in it is too (0600). A directory or file found loosened at
//! start is warned about (what, its mode, the command that fixes it) rather than
//! refused or changed behind the operator's back.

use std::io;
use std::path::{Path, PathBuf};

/// The mode the data directory (and `tls/` in it) is created with.
pub const DIR_MODE: u32 = 0o700;
/// The mode files written in the data directory are created with.
pub const FILE_MODE: u32 = 0o600;

/// A directory or file of the data directory that others can access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosened {
    /// The directory or file.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// Whether it is a directory.
    pub dir: bool,
}

impl Loosened {
    /// The command that restores the mode it is created with.
    pub fn fix(&self) -> String {
        let mode = if self.dir { DIR_MODE } else { FILE_MODE };
        format!("chmod {mode:o} {}", self.path.display())
    }
}

/// Creates `dir` (and missing parents) owner-only unless it exists.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Creates `path` empty and owner-only unless it exists, so that SQLite opens a
/// file with that mode (an empty file is an empty database) and gives its `-wal`
/// and `-shm` files the same mode.
pub fn precreate_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The data directory, `tls/` in it, and the files directly in either, that
/// group or others can access. A missing directory has nothing loosened.
pub fn loosened(dir: &Path) -> io::Result<Vec<Loosened>> {
    let mut found = Vec::new();
    #[cfg(unix)]
    for sub in [dir.to_owned(), dir.join("tls")] {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(&sub) {
            Ok(meta) if meta.is_dir() => meta,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut check = |path: PathBuf, meta: &std::fs::Metadata| {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                found.push(Loosened {
                    path,
                    mode,
                    dir: meta.is_dir(),
                });
            }
        };
        check(sub.clone(), &meta);
        let mut entries: Vec<_> = std::fs::read_dir(&sub)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            // Not followed: a link's target is not the data directory's to judge.
            let meta = entry.metadata()?;
            if meta.is_file() {
                check(entry.path(), &meta);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(found)
}

/// Creates the data directory owner-only if it is missing, and logs a warning for
/// each directory or file in it that group or others can access.
pub fn prepare(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    for loose in loosened(dir)? {
        tracing::warn!(
            path = %loose.path.display(),
            mode = %format!("{:o}", loose.mode),
            fix = %loose.fix(),
            "the management data directory holds signing keys, subscription keys and secrets, \
             but {} is readable by others (mode {:o}); fix it with `{}`",
            loose.path.display(),
            loose.mode,
            loose.fix()
        );
    }
    Ok(())
}

#[cfg(all(test, unix))]
#[allow(clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn created_owner_only_and_loosening_is_found() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        create_private_dir(&dir).expect("create");
        assert_eq!(mode(&dir), DIR_MODE);
        let db = dir.join("x.db");
        precreate_private_file(&db).expect("create file");
        assert_eq!(mode(&db), FILE_MODE);
        // An existing file is left as it is.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        precreate_private_file(&db).expect("exists");
        assert_eq!(mode(&db), 0o644);
        let found = loosened(&dir).expect("check");
        assert_eq!(
            found,
            [Loosened {
                path: db.clone(),
                mode: 0o644,
                dir: false
            }]
        );
        assert_eq!(found[0].fix(), format!("chmod 600 {}", db.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let found = loosened(&dir).expect("check");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].fix(), format!("chmod 700 {}", dir.display()));
        assert!(loosened(&tmp.path().join("missing"))
            .expect("check")
            .is_empty());
    }
}
