//! The management plane's Ed25519 signing key: made on first run in the data
//! directory (`signing-key.pk8`, PKCS#8, mode 0600), kept across restarts, and
//! used to sign every configuration snapshot sent to a gateway (see
//! `portcullis_core::sync::signature`).
//!
//! A rotation (`portcullis management --rotate-signing-key`) moves the key to
//! `signing-key.previous.pk8` and makes a new one; until the overlap is ended
//! (`--end-signing-key-overlap`, which removes the previous key) every snapshot
//! carries both signatures, the new key's first, so gateways that trust either
//! key accept it and pinned gateways move their pin to the new key.

use std::io::Write;
use std::path::{Path, PathBuf};

use portcullis_core::sync::signature::{header_value, join_values, PublicKey};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The key file inside the data directory.
pub const FILE_NAME: &str = "signing-key.pk8";
/// The previous key's file during a rotation's overlap.
pub const PREVIOUS_FILE_NAME: &str = "signing-key.previous.pk8";

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
    /// A rotation while the previous one's overlap is under way.
    #[error("a signing key rotation is already under way (the previous key is still in use); end its overlap with --end-signing-key-overlap once every gateway trusts the new key, then rotate again")]
    OverlapUnderWay,
    /// Ending an overlap when there is none.
    #[error("no signing key rotation is under way: there is no previous key to drop")]
    NoOverlap,
    /// Rotating before any key was made.
    #[error(
        "there is no signing key in {dir} to rotate; start the management plane once to make one"
    )]
    NoKey {
        /// The data directory.
        dir: PathBuf,
    },
}

/// The previous key, kept during a rotation's overlap.
struct Previous {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

/// The management plane's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
    /// Whether this start made the key (it is then printed for operators).
    created: bool,
    /// The key rotated out, while the overlap lasts.
    previous: Option<Previous>,
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
    /// With `signing-key.previous.pk8` there too, the overlap of a rotation
    /// is under way and snapshots are signed with both keys.
    pub fn load_or_create(dir: &Path) -> Result<SigningKey, SigningKeyError> {
        let previous = read_key(&dir.join(PREVIOUS_FILE_NAME))?.map(|pair| Previous {
            public: public_of(&pair),
            pair,
        });
        let mut key = SigningKey::load_or_create_current(dir)?;
        key.previous = previous;
        Ok(key)
    }

    fn load_or_create_current(dir: &Path) -> Result<SigningKey, SigningKeyError> {
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

    /// Starts a rotation in `dir` (no plane may be running on it): the key
    /// becomes the previous one and a new key is made. Returns (new, previous).
    pub fn rotate(dir: &Path) -> Result<(PublicKey, PublicKey), SigningKeyError> {
        let current = dir.join(FILE_NAME);
        let previous = dir.join(PREVIOUS_FILE_NAME);
        if previous.exists() {
            return Err(SigningKeyError::OverlapUnderWay);
        }
        let old = read_key(&current)?.ok_or_else(|| SigningKeyError::NoKey {
            dir: dir.to_owned(),
        })?;
        // Rename, not copy: the private key never exists twice. A crash after
        // it leaves a previous key and no current one, and the next start (or
        // this command again, refused) makes the new key.
        std::fs::rename(&current, &previous).map_err(|source| SigningKeyError::Io {
            path: previous.clone(),
            source,
        })?;
        let new = SigningKey::load_or_create_current(dir)?;
        Ok((new.public.clone(), public_of(&old)))
    }

    /// Ends a rotation's overlap in `dir`: the previous key is removed.
    /// Returns it.
    pub fn end_overlap(dir: &Path) -> Result<PublicKey, SigningKeyError> {
        let path = dir.join(PREVIOUS_FILE_NAME);
        let old = read_key(&path)?.ok_or(SigningKeyError::NoOverlap)?;
        std::fs::remove_file(&path).map_err(|source| SigningKeyError::Io { path, source })?;
        Ok(public_of(&old))
    }

    fn new(pair: Ed25519KeyPair, created: bool) -> SigningKey {
        SigningKey {
            public: public_of(&pair),
            pair,
            created,
            previous: None,
        }
    }

    /// The previous key, while a rotation's overlap lasts.
    pub fn previous_public_key(&self) -> Option<&PublicKey> {
        self.previous.as_ref().map(|p| &p.public)
    }

    /// The `Portcullis-Signing-Key` header value: the key, then the previous
    /// one during an overlap.
    pub fn public_keys_header(&self) -> String {
        let mut keys = vec![self.public.to_base64()];
        keys.extend(self.previous_public_key().map(PublicKey::to_base64));
        join_values(&keys)
    }

    /// The public key gateways verify with.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Whether this start made the key.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The signature header value (`ed25519=<base64>`) of `body`; during an
    /// overlap the previous key's signature follows: `ed25519=<new>, ed25519=<old>`.
    pub fn sign_header(&self, body: &[u8]) -> String {
        let mut values = vec![header_value(self.pair.sign(body).as_ref())];
        if let Some(previous) = &self.previous {
            values.push(header_value(previous.pair.sign(body).as_ref()));
        }
        join_values(&values)
    }
}

fn public_of(pair: &Ed25519KeyPair) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(pair.public_key().as_ref());
    PublicKey::from_bytes(bytes)
}

/// The key in `path`; `None` when there is no file.
fn read_key(path: &Path) -> Result<Option<Ed25519KeyPair>, SigningKeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            warn_if_readable_by_others(path);
            Ed25519KeyPair::from_pkcs8(&bytes)
                .map(Some)
                .map_err(|_| SigningKeyError::Invalid {
                    path: path.to_owned(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SigningKeyError::Io {
            path: path.to_owned(),
            source,
        }),
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

    #[test]
    fn a_rotation_signs_with_both_keys_until_its_overlap_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            SigningKey::rotate(dir.path()),
            Err(SigningKeyError::NoKey { .. })
        ));
        let old = SigningKey::load_or_create(dir.path()).expect("made");
        assert!(old.previous_public_key().is_none());
        let (new, previous) = SigningKey::rotate(dir.path()).expect("rotated");
        assert_eq!(&previous, old.public_key());
        assert_ne!(&new, old.public_key());
        assert!(matches!(
            SigningKey::rotate(dir.path()),
            Err(SigningKeyError::OverlapUnderWay)
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in [FILE_NAME, PREVIOUS_FILE_NAME] {
                let mode = std::fs::metadata(dir.path().join(name))
                    .expect("file")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }

        let key = SigningKey::load_or_create(dir.path()).expect("read");
        assert_eq!(key.public_key(), &new);
        assert_eq!(key.previous_public_key(), Some(&previous));
        let body = br#"{"revision":1}"#;
        let header = key.sign_header(body);
        assert_eq!(header.matches("ed25519=").count(), 2, "{header}");
        // The new key's signature first.
        assert_eq!(new.verify(body, header.split(',').next()), Ok(()));
        assert_eq!(new.verify(body, Some(&header)), Ok(()));
        assert_eq!(previous.verify(body, Some(&header)), Ok(()));
        assert_eq!(
            key.public_keys_header(),
            format!("{}, {}", new.to_base64(), previous.to_base64())
        );

        assert_eq!(
            SigningKey::end_overlap(dir.path()).expect("ended"),
            previous
        );
        assert!(matches!(
            SigningKey::end_overlap(dir.path()),
            Err(SigningKeyError::NoOverlap)
        ));
        let key = SigningKey::load_or_create(dir.path()).expect("read");
        let header = key.sign_header(body);
        assert_eq!(header.matches("ed25519=").count(), 1, "{header}");
        assert!(previous.verify(body, Some(&header)).is_err());
        assert_eq!(key.public_keys_header(), new.to_base64());
    }
}
