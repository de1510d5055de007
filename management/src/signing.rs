//! The management plane's Ed25519 signing key: made on first run in the data
//! directory (`signing-key.pk8`, PKCS#8, mode 0600), kept across restarts, and
//! used to sign every configuration snapshot sent to a gateway (see
//! `portcullis_core::sync::signature`).

use std::io::Write;
use std::path::{Path, PathBuf};

use portcullis_core::sync::signature::{header_value, PublicKey};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The key file inside the data directory.
pub const FILE_NAME: &str = "signing-key.pk8";

/// Why the signing key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// Reading or writing the key file failed.
    #[error("signing key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 key.
    #[error("signing key {path} is not an Ed25519 PKCS#8 key; restore it from a backup, or remove it to make a new one (gateways pinned to the old key must then be given the new one)")]
    Invalid {
        /// The key file.
        path: PathBuf,
    },
    /// The OS random source failed.
    #[error("the system random source failed while making the signing key")]
    Random,
}

/// The management plane's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
    /// Whether this start made the key (it is then printed for operators).
    created: bool,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads `<dir>/signing-key.pk8`, or makes it (mode 0600) when there is none.
    pub fn load_or_create(dir: &Path) -> Result<SigningKey, SigningKeyError> {
        let path = dir.join(FILE_NAME);
        let io = |source| SigningKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                warn_if_readable_by_others(&path);
                let pair = Ed25519KeyPair::from_pkcs8(&bytes)
                    .map_err(|_| SigningKeyError::Invalid { path: path.clone() })?;
                Ok(SigningKey::new(pair, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| SigningKeyError::Random)?;
                write_private(&path, pkcs8.as_ref()).map_err(io)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| SigningKeyError::Invalid { path: path.clone() })?;
                tracing::info!(path = %path.display(), "management signing key made");
                Ok(SigningKey::new(pair, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn new(pair: Ed25519KeyPair, created: bool) -> SigningKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(pair.public_key().as_ref());
        SigningKey {
            pair,
            public: PublicKey::from_bytes(bytes),
            created,
        }
    }

    /// The public key gateways verify with.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Whether this start made the key.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The signature header value (`ed25519=<base64>`) of `body`.
    pub fn sign_header(&self, body: &[u8]) -> String {
        header_value(self.pair.sign(body).as_ref())
    }
}

/// Creates `path` with `bytes`, readable by its owner only, durably; never
/// replaces an existing file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the signing key can be read by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::load_or_create(dir.path()).expect("made");
        assert!(key.created());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SigningKey::load_or_create(dir.path()).expect("read");
        assert!(!again.created());
        assert_eq!(again.public_key(), key.public_key());
        let body = br#"{"revision":1}"#;
        let header = again.sign_header(body);
        assert_eq!(key.public_key().verify(body, Some(&header)), Ok(()));
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE_NAME), b"not a key").expect("write");
        let err = SigningKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, SigningKeyError::Invalid { .. }), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(FILE_NAME)).expect("kept"),
            b"not a key"
        );
    }
}
