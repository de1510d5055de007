//! The configuration backup file: the last applied snapshot, encrypted and
//! checksummed, so a gateway started while the management plane is unreachable can
//! serve at once.
//!
//! Layout (integers big-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `PCLSBKUP` |
//! | 8 | 1 | format version (1) |
//! | 9 | 8 | revision of the snapshot |
//! | 17 | 12 | AES-GCM nonce |
//! | 29 | 8 | ciphertext length `n` (tag included) |
//! | 37 | n | AES-256-GCM ciphertext of the snapshot JSON, then its 16-byte tag |
//! | 37 + n | 32 | SHA-256 of every byte before it |
//!
//! The header (the first 37 bytes) is the AEAD's associated data, so the revision
//! cannot be changed without the key. The checksum is unkeyed: it tells a torn or
//! truncated write ([`BackupError::Truncated`], [`BackupError::ChecksumMismatch`])
//! apart from a file that is whole but was written under another key or altered
//! by someone who recomputed the checksum ([`BackupError::Authentication`]).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};

use super::backup_key::BackupKey;
use crate::config::{ConfigError, Snapshot};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"PCLSBKUP";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header (the associated data).
pub const HEADER_LEN: usize = 8 + 1 + 8 + NONCE_LEN + 8;
/// Length of the checksum at the end.
pub const CHECKSUM_LEN: usize = SHA256_OUTPUT_LEN;
/// Length of the AES-GCM tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

/// Why a backup file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The file does not start like a backup file.
    #[error("not a configuration backup file (bad magic bytes)")]
    BadMagic,
    /// A format this version does not read.
    #[error("backup file format version {0} is not supported (this gateway reads version 1)")]
    UnsupportedVersion(u8),
    /// Shorter than its header says: a torn or truncated write.
    #[error("backup file truncated: {actual} bytes, expected {expected}")]
    Truncated {
        /// The length the header announces (or the least a header needs).
        expected: u64,
        /// The file's length.
        actual: u64,
    },
    /// Longer than its header says.
    #[error("backup file has trailing bytes: {actual} bytes, expected {expected}")]
    TrailingBytes {
        /// The length the header announces.
        expected: u64,
        /// The file's length.
        actual: u64,
    },
    /// The checksum does not match: the file is damaged (torn write, bad disk).
    #[error("backup file damaged: checksum mismatch")]
    ChecksumMismatch,
    /// Whole, but does not decrypt: another key, or altered on purpose.
    #[error("backup file does not decrypt: wrong backup key, or the file was tampered with")]
    Authentication,
    /// Decrypted, but the snapshot inside is not valid.
    #[error("backup snapshot is invalid: {0}")]
    Invalid(Box<ConfigError>),
    /// The snapshot's revision is not the one in the header.
    #[error("backup snapshot has revision {snapshot}, its header says {header}")]
    RevisionMismatch {
        /// The revision in the header.
        header: u64,
        /// The revision in the snapshot.
        snapshot: u64,
    },
    /// Too large to encrypt (AES-GCM's limit is about 64 GiB).
    #[error("snapshot too large to encrypt")]
    TooLarge,
}

/// A backup file opened: its revision and the snapshot JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBackup {
    /// The revision in the header.
    pub revision: u64,
    /// The snapshot JSON, decrypted.
    pub snapshot_json: Vec<u8>,
}

/// Nonces that never repeat under one key: a random base (fresh from the OS at each
/// process start) with a counter folded into its last 8 bytes.
#[derive(Debug, Clone)]
pub struct NonceSequence {
    base: [u8; NONCE_LEN],
    counter: u64,
}

impl NonceSequence {
    /// A sequence starting from `base` (12 random bytes from the OS).
    pub fn new(base: [u8; NONCE_LEN]) -> Self {
        NonceSequence { base, counter: 0 }
    }

    /// The next nonce; distinct from every earlier one of this sequence.
    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut nonce = self.base;
        for (b, c) in nonce[4..].iter_mut().zip(self.counter.to_be_bytes()) {
            *b ^= c;
        }
        self.counter = self.counter.wrapping_add(1);
        nonce
    }
}

fn aead_key(key: &BackupKey) -> LessSafeKey {
    // A 32-byte key is always accepted by AES-256-GCM.
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_bytes()).expect("AES-256 key length");
    LessSafeKey::new(unbound)
}

/// Encrypts `snapshot_json` (of revision `revision`) into backup file bytes.
pub fn seal(
    revision: u64,
    snapshot_json: &[u8],
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, BackupError> {
    seal_framed(MAGIC, revision, snapshot_json, key, nonce)
}

/// [`seal`] with another `magic` (and `number` in the revision's place): the
/// same format for other files sealed under a backup key, which the magic, part
/// of the associated data, keeps from passing for one another.
pub(crate) fn seal_framed(
    magic: &[u8; 8],
    number: u64,
    plaintext: &[u8],
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, BackupError> {
    let ct_len = plaintext.len() + TAG_LEN;
    let mut out = Vec::with_capacity(HEADER_LEN + ct_len + CHECKSUM_LEN);
    out.extend_from_slice(magic);
    out.push(VERSION);
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&(ct_len as u64).to_be_bytes());
    let mut body = plaintext.to_vec();
    aead_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..HEADER_LEN]),
            &mut body,
        )
        .map_err(|_| BackupError::TooLarge)?;
    out.extend_from_slice(&body);
    let checksum = digest(&SHA256, &out);
    out.extend_from_slice(checksum.as_ref());
    Ok(out)
}

/// Checks and decrypts backup file bytes.
pub fn open(file: &[u8], key: &BackupKey) -> Result<OpenedBackup, BackupError> {
    let (revision, snapshot_json) = open_framed(MAGIC, file, key)?;
    Ok(OpenedBackup {
        revision,
        snapshot_json,
    })
}

/// [`open`] of a file sealed by [`seal_framed`] with `magic`: its number and
/// plaintext.
pub(crate) fn open_framed(
    magic: &[u8; 8],
    file: &[u8],
    key: &BackupKey,
) -> Result<(u64, Vec<u8>), BackupError> {
    let actual = file.len() as u64;
    if file.len() < HEADER_LEN {
        // A prefix of a header is a torn write; anything else is not a backup.
        let n = file.len().min(magic.len());
        return if file[..n] == magic[..n] {
            Err(BackupError::Truncated {
                expected: (HEADER_LEN + TAG_LEN + CHECKSUM_LEN) as u64,
                actual,
            })
        } else {
            Err(BackupError::BadMagic)
        };
    }
    let (header, rest) = file.split_at(HEADER_LEN);
    if &header[..8] != magic {
        return Err(BackupError::BadMagic);
    }
    if header[8] != VERSION {
        return Err(BackupError::UnsupportedVersion(header[8]));
    }
    let revision = u64::from_be_bytes(array(&header[9..17]));
    let nonce: [u8; NONCE_LEN] = array(&header[17..29]);
    let ct_len = u64::from_be_bytes(array(&header[29..37]));
    let expected = ct_len.saturating_add((HEADER_LEN + CHECKSUM_LEN) as u64);
    if actual < expected {
        return Err(BackupError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(BackupError::TrailingBytes { expected, actual });
    }
    let (ciphertext, checksum) = rest.split_at(rest.len() - CHECKSUM_LEN);
    let computed = digest(&SHA256, &file[..file.len() - CHECKSUM_LEN]);
    if computed.as_ref() != checksum {
        return Err(BackupError::ChecksumMismatch);
    }
    let mut body = ciphertext.to_vec();
    let plain_len = aead_key(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        )
        .map_err(|_| BackupError::Authentication)?
        .len();
    body.truncate(plain_len);
    Ok((revision, body))
}

/// Opens a backup file and parses the snapshot in it, checking its revision.
pub fn open_snapshot(file: &[u8], key: &BackupKey) -> Result<Snapshot, BackupError> {
    let opened = open(file, key)?;
    let snapshot = Snapshot::from_json(&opened.snapshot_json)
        .map_err(|e| BackupError::Invalid(Box::new(e)))?;
    if snapshot.revision != opened.revision {
        return Err(BackupError::RevisionMismatch {
            header: opened.revision,
            snapshot: snapshot.revision,
        });
    }
    Ok(snapshot)
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = br#"{"revision": 42, "apis": []}"#;

    fn key(b: u8) -> BackupKey {
        BackupKey::from_bytes([b; 32])
    }

    fn sample() -> Vec<u8> {
        seal(42, JSON, &key(1), [9; 12]).unwrap()
    }

    #[test]
    fn round_trip() {
        let file = sample();
        assert_eq!(file.len(), HEADER_LEN + JSON.len() + TAG_LEN + CHECKSUM_LEN);
        assert_eq!(&file[..8], MAGIC);
        let opened = open(&file, &key(1)).unwrap();
        assert_eq!(opened.revision, 42);
        assert_eq!(opened.snapshot_json, JSON);
        assert_eq!(open_snapshot(&file, &key(1)).unwrap().revision, 42);
        // The plaintext does not appear in the file.
        assert!(!file.windows(8).any(|w| w == b"revision"));
        // An empty body round-trips too.
        let empty = seal(0, b"", &key(1), [0; 12]).unwrap();
        assert_eq!(open(&empty, &key(1)).unwrap().snapshot_json, b"");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let file = sample();
        for i in 0..file.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                let err = open(&bad, &key(1)).unwrap_err();
                let expected_kind = match i {
                    0..=7 => matches!(err, BackupError::BadMagic),
                    8 => matches!(err, BackupError::UnsupportedVersion(_)),
                    29..=36 => matches!(
                        err,
                        BackupError::Truncated { .. } | BackupError::TrailingBytes { .. }
                    ),
                    _ => err == BackupError::ChecksumMismatch,
                };
                assert!(expected_kind, "flip {flip:#x} at {i}: {err}");
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let file = sample();
        for len in 0..file.len() {
            let err = open(&file[..len], &key(1)).unwrap_err();
            assert!(
                matches!(err, BackupError::Truncated { .. }),
                "length {len}: {err}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            open(&longer, &key(1)),
            Err(BackupError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn wrong_key_and_tampering_fail_authentication() {
        let file = sample();
        assert_eq!(open(&file, &key(2)), Err(BackupError::Authentication));
        // Tampering that fixes up the checksum: a changed ciphertext byte...
        let refresh = |mut bad: Vec<u8>| {
            let end = bad.len() - CHECKSUM_LEN;
            let sum = digest(&SHA256, &bad[..end]);
            bad[end..].copy_from_slice(sum.as_ref());
            bad
        };
        let mut bad = file.clone();
        bad[HEADER_LEN + 3] ^= 1;
        assert_eq!(
            open(&refresh(bad), &key(1)),
            Err(BackupError::Authentication)
        );
        // ...or a changed revision in the header (authenticated as associated data).
        let mut bad = file.clone();
        bad[16] ^= 1;
        assert_eq!(
            open(&refresh(bad), &key(1)),
            Err(BackupError::Authentication)
        );
    }

    #[test]
    fn errors_are_distinct_and_readable() {
        let errors = [
            BackupError::BadMagic,
            BackupError::UnsupportedVersion(2),
            BackupError::Truncated {
                expected: 2,
                actual: 1,
            },
            BackupError::TrailingBytes {
                expected: 1,
                actual: 2,
            },
            BackupError::ChecksumMismatch,
            BackupError::Authentication,
            BackupError::RevisionMismatch {
                header: 1,
                snapshot: 2,
            },
            BackupError::TooLarge,
        ];
        let texts: std::collections::BTreeSet<String> =
            errors.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), errors.len());
        assert!(BackupError::Authentication
            .to_string()
            .contains("wrong backup key"));
        assert!(BackupError::ChecksumMismatch
            .to_string()
            .contains("damaged"));
    }

    #[test]
    fn a_snapshot_that_does_not_fit_is_invalid() {
        let file = seal(3, b"{\"revision\": 3, \"bogus\": 1}", &key(1), [0; 12]).unwrap();
        assert!(matches!(
            open_snapshot(&file, &key(1)),
            Err(BackupError::Invalid(_))
        ));
        let file = seal(3, b"{\"revision\": 4}", &key(1), [0; 12]).unwrap();
        assert_eq!(
            open_snapshot(&file, &key(1)),
            Err(BackupError::RevisionMismatch {
                header: 3,
                snapshot: 4
            })
        );
    }

    #[test]
    fn nonces_do_not_repeat() {
        let mut seq = NonceSequence::new([0x5a; 12]);
        let nonces: std::collections::BTreeSet<[u8; 12]> =
            (0..10_000).map(|_| seq.next_nonce()).collect();
        assert_eq!(nonces.len(), 10_000);
        // Two sealings of the same snapshot differ, and both open.
        let mut seq = NonceSequence::new([7; 12]);
        let a = seal(1, JSON, &key(1), seq.next_nonce()).unwrap();
        let b = seal(1, JSON, &key(1), seq.next_nonce()).unwrap();
        assert_ne!(a, b);
        assert!(open(&a, &key(1)).is_ok() && open(&b, &key(1)).is_ok());
    }
}
