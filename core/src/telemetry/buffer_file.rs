//! Upload batches at rest: each batch file in the telemetry buffer directory is
//! sealed like the configuration backup (the same AES-256-GCM and checksummed
//! layout, [`crate::sync::backup`]), because batches hold client addresses,
//! paths and headers.
//!
//! The file is `PCLSTLMB` (not the backup's magic, so neither file passes for
//! the other), the format version, the batch's number in the buffer (its file
//! name says the same: a renamed file is refused), the nonce, the ciphertext of
//! the batch JSON and a SHA-256 of all of it. The key is derived from the backup
//! key (HKDF-SHA256), so batches and backups never share a key or a nonce space.
//!
//! Pure functions: the nonces come from a base the adapter draws from its random
//! source ([`BatchSealer::new`]).

use ring::aead::NONCE_LEN;
use ring::hkdf;

use crate::sync::backup::{self, BackupError, NonceSequence};
use crate::sync::BackupKey;

/// The first bytes of every sealed batch file.
pub const MAGIC: &[u8; 8] = b"PCLSTLMB";

/// What the batch key is derived for (HKDF's `info`).
const KEY_PURPOSE: &[u8] = b"portcullis telemetry buffer v1";

/// Why a batch file in the buffer directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchFileError {
    /// Not a sealed batch: plaintext JSON an earlier version wrote, or a file
    /// that does not belong there.
    #[error(
        "not an encrypted telemetry batch (plaintext from an earlier version, or a foreign file)"
    )]
    NotSealed,
    /// A format this version does not read.
    #[error(
        "telemetry batch file format version {0} is not supported (this gateway reads version 1)"
    )]
    UnsupportedVersion(u8),
    /// Truncated, too long or failing its checksum: a torn write or a bad disk.
    #[error("telemetry batch file damaged: {0}")]
    Damaged(String),
    /// Whole, but does not decrypt: another backup key, or altered on purpose.
    #[error(
        "telemetry batch file does not decrypt: wrong backup key, or the file was tampered with"
    )]
    Authentication,
    /// Decrypts, but holds another batch than its name says: renamed.
    #[error("telemetry batch file holds batch {sealed} but is named for batch {named}: renamed or tampered with")]
    WrongBatch {
        /// The number in the file name.
        named: u64,
        /// The number sealed in the file.
        sealed: u64,
    },
    /// Too large to encrypt (AES-GCM's limit is about 64 GiB).
    #[error("telemetry batch too large to encrypt")]
    TooLarge,
}

impl From<BackupError> for BatchFileError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::BadMagic => BatchFileError::NotSealed,
            BackupError::UnsupportedVersion(v) => BatchFileError::UnsupportedVersion(v),
            BackupError::Truncated { expected, actual } => {
                BatchFileError::Damaged(format!("truncated: {actual} bytes, expected {expected}"))
            }
            BackupError::TrailingBytes { expected, actual } => BatchFileError::Damaged(format!(
                "trailing bytes: {actual} bytes, expected {expected}"
            )),
            BackupError::ChecksumMismatch => BatchFileError::Damaged("checksum mismatch".into()),
            BackupError::Authentication => BatchFileError::Authentication,
            BackupError::TooLarge => BatchFileError::TooLarge,
            // Snapshot and binding errors: opening a batch never parses a
            // snapshot nor reads a bound header.
            other @ (BackupError::Invalid(_)
            | BackupError::RevisionMismatch { .. }
            | BackupError::Unbound
            | BackupError::OtherGateway { .. }
            | BackupError::StoreMismatch { .. }
            | BackupError::Signature(_)
            | BackupError::PinMismatch(_)
            | BackupError::IdTooLong) => BatchFileError::Damaged(other.to_string()),
        }
    }
}

/// The key batch files are sealed under, derived from the backup key. `Debug`
/// does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchKey(BackupKey);

impl std::fmt::Debug for BatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchKey(..)")
    }
}

impl BatchKey {
    /// The batch key of backup key `key`.
    // HKDF-SHA256 always yields 32 bytes: the expect cannot fire.
    #[allow(clippy::expect_used)]
    pub fn derive(key: &BackupKey) -> BatchKey {
        let mut out = [0u8; BackupKey::LEN];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(key.as_bytes());
        // HKDF-SHA256 gives up to 8160 bytes and `HKDF_SHA256` asks for 32.
        prk.expand(&[KEY_PURPOSE], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF-SHA256 yields 32 bytes");
        BatchKey(BackupKey::from_bytes(out))
    }
}

/// Seals the batches of one process: the key and a nonce sequence that never
/// repeats.
#[derive(Debug, Clone)]
pub struct BatchSealer {
    key: BatchKey,
    nonces: NonceSequence,
}

impl BatchSealer {
    /// A sealer under `key` whose nonces start from `nonce_base` (12 bytes the
    /// adapter draws from its random source at start).
    pub fn new(key: BatchKey, nonce_base: [u8; NONCE_LEN]) -> Self {
        BatchSealer {
            key,
            nonces: NonceSequence::new(nonce_base),
        }
    }

    /// The key files are opened with.
    pub fn key(&self) -> &BatchKey {
        &self.key
    }

    /// The file bytes of batch `seq` (its JSON, `batch_json`).
    pub fn seal(&mut self, seq: u64, batch_json: &[u8]) -> Result<Vec<u8>, BatchFileError> {
        let nonce = self.nonces.next_nonce();
        Ok(backup::seal_framed(
            MAGIC,
            seq,
            batch_json,
            &self.key.0,
            nonce,
        )?)
    }
}

/// Checks and decrypts the file of batch `seq` (the number its name says): the
/// batch JSON.
pub fn open(file: &[u8], seq: u64, key: &BatchKey) -> Result<Vec<u8>, BatchFileError> {
    let (sealed, json) = backup::open_framed(MAGIC, file, &key.0)?;
    if sealed != seq {
        return Err(BatchFileError::WrongBatch { named: seq, sealed });
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::backup::{CHECKSUM_LEN, HEADER_LEN};
    use ring::digest::{digest, SHA256};

    const JSON: &[u8] = br#"{"id":"b-1","records":[{"path":"/secret/path"}]}"#;

    fn key(b: u8) -> BatchKey {
        BatchKey::derive(&BackupKey::from_bytes([b; 32]))
    }

    fn sample() -> Vec<u8> {
        BatchSealer::new(key(1), [3; 12]).seal(9, JSON).unwrap()
    }

    #[test]
    fn round_trip_hides_the_plaintext() {
        let file = sample();
        assert_eq!(&file[..8], MAGIC);
        assert_eq!(open(&file, 9, &key(1)).unwrap(), JSON);
        assert!(!file.windows(6).any(|w| w == b"secret"));
        assert!(!file.windows(7).any(|w| w == b"records"));
    }

    #[test]
    fn the_batch_key_is_not_the_backup_key() {
        let backup_key = BackupKey::from_bytes([1; 32]);
        assert_ne!(key(1).0, backup_key);
        assert_ne!(key(1), key(2));
        assert_eq!(key(1), key(1));
        assert_eq!(format!("{:?}", key(1)), "BatchKey(..)");
        // A batch sealed under the backup key itself does not open.
        let under_backup_key = backup::seal_framed(MAGIC, 9, JSON, &backup_key, [0; 12]).unwrap();
        assert_eq!(
            open(&under_backup_key, 9, &key(1)),
            Err(BatchFileError::Authentication)
        );
    }

    #[test]
    fn every_single_byte_flip_is_refused() {
        let file = sample();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, 9, &key(1)).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn every_truncation_is_refused_as_damage() {
        let file = sample();
        for len in 0..file.len() {
            let err = open(&file[..len], 9, &key(1)).unwrap_err();
            assert!(matches!(err, BatchFileError::Damaged(_)), "{len}: {err}");
        }
    }

    #[test]
    fn tampering_foreign_keys_renames_and_plaintext_say_why() {
        let file = sample();
        assert_eq!(open(&file, 9, &key(2)), Err(BatchFileError::Authentication));
        // A changed ciphertext byte with the checksum fixed up.
        let mut bad = file.clone();
        bad[HEADER_LEN + 2] ^= 1;
        let end = bad.len() - CHECKSUM_LEN;
        let sum = digest(&SHA256, &bad[..end]);
        bad[end..].copy_from_slice(sum.as_ref());
        assert_eq!(open(&bad, 9, &key(1)), Err(BatchFileError::Authentication));
        assert_eq!(
            open(&file, 10, &key(1)),
            Err(BatchFileError::WrongBatch {
                named: 10,
                sealed: 9
            })
        );
        // What an earlier version wrote, and a configuration backup.
        assert_eq!(open(JSON, 9, &key(1)), Err(BatchFileError::NotSealed));
        let binding = backup::Binding {
            gateway_id: "gw".into(),
            store_id: String::new(),
            signature: String::new(),
            signing_key: None,
        };
        let config =
            backup::seal(9, JSON, &binding, &BackupKey::from_bytes([1; 32]), [0; 12]).unwrap();
        assert_eq!(open(&config, 9, &key(1)), Err(BatchFileError::NotSealed));
        assert!(BatchFileError::Authentication
            .to_string()
            .contains("tampered"));
        assert!(BatchFileError::NotSealed
            .to_string()
            .contains("earlier version"));
    }

    #[test]
    fn one_sealer_never_repeats_a_nonce() {
        let mut sealer = BatchSealer::new(key(1), [5; 12]);
        let a = sealer.seal(1, JSON).unwrap();
        let b = sealer.seal(1, JSON).unwrap();
        assert_ne!(a[17..29], b[17..29]);
        assert_eq!(open(&a, 1, sealer.key()).unwrap(), JSON);
        assert_eq!(open(&b, 1, sealer.key()).unwrap(), JSON);
    }
}
