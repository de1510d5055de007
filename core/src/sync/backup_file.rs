//! The names in a backup directory, and what a read of the backup file means,
//! the same for every adapter (so either runtime finds the other's backup and
//! cleans up after the other's crash). The adapter does the file IO.

use std::io;

/// The name of the backup file inside the backup directory.
pub const BACKUP_FILE_NAME: &str = "config.backup";

/// Temporary files start with this (and end with [`TEMP_SUFFIX`]).
const TEMP_PREFIX: &str = ".config.backup.";
const TEMP_SUFFIX: &str = ".tmp";

/// The temporary file name of write number `n` of the backup by process `pid`:
/// the caller counts its writes, so concurrent writes never share a temporary
/// file.
pub fn temp_name(pid: u32, n: u64) -> String {
    format!("{TEMP_PREFIX}{pid}.{n}{TEMP_SUFFIX}")
}

/// Whether `name` is a temporary file a write left behind (a crash between write
/// and rename): what preparing the directory removes.
pub fn is_leftover_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// A read of the backup file: the bytes, `None` when there is no file yet (not
/// an error: the first start), or what failed.
pub fn read_result(read: io::Result<Vec<u8>>) -> io::Result<Option<Vec<u8>>> {
    match read {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_and_recognised_as_leftovers() {
        let (a, b) = (temp_name(7, 0), temp_name(7, 1));
        assert_ne!(a, b);
        assert!(is_leftover_temp(&a) && is_leftover_temp(".config.backup.1.2.tmp"));
        assert!(!is_leftover_temp(BACKUP_FILE_NAME));
        assert!(!is_leftover_temp("other"));
    }

    #[test]
    fn a_missing_file_is_no_backup_but_other_errors_are_errors() {
        let missing = read_result(Err(io::ErrorKind::NotFound.into()));
        assert!(matches!(missing, Ok(None)));
        assert!(read_result(Err(io::ErrorKind::PermissionDenied.into())).is_err());
        assert_eq!(
            read_result(Ok(b"x".to_vec())).ok().flatten(),
            Some(b"x".to_vec())
        );
    }
}
