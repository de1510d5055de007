//! The key-encryption key: certificates' private keys and the passwords of
//! gateways' Redis stores are stored sealed with it (AES-256-GCM, what the
//! secret is and whose it is as associated data), never in the clear.
//!
//! It is 32 random bytes in its own owner-only file in the data directory
//! (`certificate-keys.kek`), made on the first secret sealed. The database
//! alone (a copy, a backup) then reveals no private key or password; the data
//! directory as a whole does, like the signing key next to it.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::secrets::random_bytes;
use super::StoreError;

/// The file in the data directory that holds the key.
pub const FILE_NAME: &str = "certificate-keys.kek";

/// The prefix of a sealed value: the format's version.
const SEALED_PREFIX: &str = "v1:";

/// The key that seals and opens certificates' private keys and store passwords.
pub(crate) struct KeyEncryptionKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// The key in file `path` (by default `<data dir>/certificate-keys.kek`);
    /// `None` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<KeyEncryptionKey>, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(&bytes, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// The key in file `path`, made (owner-only, durably) if there is none.
    pub fn load_or_create(path: &Path) -> Result<KeyEncryptionKey, StoreError> {
        if let Some(key) = Self::load(path)? {
            return Ok(key);
        }
        let bytes = random_bytes(32)?;
        write_private(path, &bytes)?;
        tracing::info!(path = %path.display(), "certificate key-encryption key made");
        Self::from_bytes(&bytes, path)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<KeyEncryptionKey, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| {
            StoreError::Corrupt(format!("{} does not hold a 32-byte key", path.display()))
        })?;
        Ok(KeyEncryptionKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plain` for certificate `id`: `v1:` and base64 of nonce, ciphertext and tag.
    pub fn seal(&self, id: &str, plain: &str) -> Result<String, StoreError> {
        self.seal_bound(&aad(CERTIFICATE_KEY, id), plain)
    }

    /// Opens what [`seal`](Self::seal) made for certificate `id`.
    pub fn open(&self, id: &str, sealed: &str) -> Result<String, StoreError> {
        self.open_bound(&aad(CERTIFICATE_KEY, id), sealed)
            .map_err(|why| {
                StoreError::Corrupt(format!("the private key of certificate '{id}' {why}"))
            })
    }

    /// Seals the password of gateway `gateway_id`'s Redis store.
    pub fn seal_store_password(&self, gateway_id: &str, plain: &str) -> Result<String, StoreError> {
        self.seal_bound(&aad(STORE_PASSWORD, gateway_id), plain)
    }

    /// Opens what [`seal_store_password`](Self::seal_store_password) made for `gateway_id`.
    pub fn open_store_password(
        &self,
        gateway_id: &str,
        sealed: &str,
    ) -> Result<String, StoreError> {
        self.open_bound(&aad(STORE_PASSWORD, gateway_id), sealed)
            .map_err(|why| {
                StoreError::Corrupt(format!(
                    "the store password of gateway '{gateway_id}' {why}"
                ))
            })
    }

    /// `v1:` and base64 of nonce, ciphertext and tag, bound to `aad`.
    fn seal_bound(&self, aad: &[u8], plain: &str) -> Result<String, StoreError> {
        let nonce_bytes = random_bytes(NONCE_LEN)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| StoreError::Corrupt("sealing a secret failed".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens what [`seal_bound`](Self::seal_bound) made with the same `aad`;
    /// the error says why, to follow the secret's name.
    fn open_bound(&self, aad: &[u8], sealed: &str) -> Result<String, String> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or("is sealed in an unknown format")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "is not base64")?;
        if bytes.len() < NONCE_LEN {
            return Err("is truncated".to_owned());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| {
                format!("does not open with the key in {FILE_NAME} (another data directory's key?)")
            })?;
        String::from_utf8(plain.to_vec()).map_err(|_| "is not text".to_owned())
    }
}

/// What a certificate's sealed private key is bound to (with the certificate id).
const CERTIFICATE_KEY: &[u8] = b"portcullis certificate private key\0";

/// What a gateway's sealed store password is bound to (with the gateway id).
const STORE_PASSWORD: &[u8] = b"portcullis gateway store password\0";

/// Binds a sealed secret to what it is and whose it is: one cannot be moved to
/// another id, nor a certificate's key read as a store password.
fn aad(what: &[u8], id: &str) -> Vec<u8> {
    let mut out = what.to_vec();
    out.extend_from_slice(id.as_bytes());
    out
}

/// Creates `path` with `bytes`, owner-only, durably; never replaces a file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(crate::data_dir::FILE_MODE);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(KeyEncryptionKey::load(&path).unwrap().is_none());
        let kek = KeyEncryptionKey::load_or_create(&path).unwrap();
        let sealed = kek.seal("c1", "secret key").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("secret"));
        assert_eq!(kek.open("c1", &sealed).unwrap(), "secret key");
        assert!(kek.open("c2", &sealed).is_err(), "bound to the id");
        // The same file gives the same key back.
        let again = KeyEncryptionKey::load(&path).unwrap().unwrap();
        assert_eq!(again.open("c1", &sealed).unwrap(), "secret key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A store password is bound to its gateway, and is not a certificate's key.
        let password = kek.seal_store_password("g1", "pw").unwrap();
        assert_eq!(kek.open_store_password("g1", &password).unwrap(), "pw");
        assert!(kek.open_store_password("g2", &password).is_err());
        assert!(kek.open("g1", &password).is_err());
        assert!(kek.open_store_password("c1", &sealed).is_err());
        // Another directory's key does not open it.
        let other = tempfile::tempdir().unwrap();
        let other = KeyEncryptionKey::load_or_create(&other.path().join(FILE_NAME)).unwrap();
        assert!(other.open("c1", &sealed).is_err());
    }
}
