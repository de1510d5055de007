//! The configuration backup file: the last applied snapshot, encrypted and
//! checksummed, so a gateway started while the management plane is unreachable can
//! serve at once.
//!
//! Layout of version 2 (integers big-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `PCLSBKUP` |
//! | 8 | 1 | format version (2) |
//! | 9 | 8 | revision of the snapshot |
//! | 17 | 12 | AES-GCM nonce |
//! | 29 | 2 | length `g` of the gateway id |
//! | 31 | g | the gateway id (UTF-8) the file belongs to |
//! | 31 + g | 2 | length `s` of the store identity |
//! | 33 + g | s | the management store's identity (UTF-8; empty if unknown) |
//! | 33 + g + s | 2 | length `x` of the signature |
//! | 35 + g + s | x | the snapshot's `Portcullis-Signature` as received (empty if unsigned), then, when it verified under a trusted management key, ` key=` and that key in base64 |
//! | 35 + g + s + x | 8 | ciphertext length `n` (tag included) |
//! | h = 43 + g + s + x | n | AES-256-GCM ciphertext of the snapshot JSON, then its 16-byte tag |
//! | h + n | 32 | SHA-256 of every byte before it |
//!
//! The header (the first `h` bytes) is the AEAD's associated data, so neither the
//! revision nor the gateway or store it is bound to can be changed without the
//! key (and the snapshot inside keeps its management signature, checked again
//! at load under the management key the gateway was given or the one recorded
//! beside the signature, its trust-on-first-use pin): a file copied from another gateway that shares the backup key is told
//! apart ([`BackupError::OtherGateway`]) and never served. The checksum is
//! unkeyed: it tells a torn or truncated write ([`BackupError::Truncated`],
//! [`BackupError::ChecksumMismatch`]) apart from a file that is whole but was
//! written under another key or altered by someone who recomputed the checksum
//! ([`BackupError::Authentication`]).
//!
//! Version 1 files (no binding) are refused ([`BackupError::Unbound`]): the
//! gateway fetches from the management plane again and writes a version 2 file.
//! Other files sealed under a backup key (the telemetry buffer) keep the
//! version 1 layout through [`seal_framed`]/[`open_framed`].

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};

use super::backup_key::BackupKey;
use crate::config::{ConfigError, Snapshot};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"PCLSBKUP";
/// The version of the framed format ([`seal_framed`]), without a binding.
pub const VERSION: u8 = 1;
/// The configuration backup's format version this code writes and reads.
pub const BOUND_VERSION: u8 = 2;
/// Length of the framed (version 1) header (the associated data); a version 2
/// header adds the bound ids.
pub const HEADER_LEN: usize = 8 + 1 + 8 + NONCE_LEN + 8;
/// Length of a version 2 header with empty ids and no signature.
pub const BOUND_HEADER_MIN: usize = HEADER_LEN + 2 + 2 + 2;
/// The longest gateway id or store identity a backup header holds.
pub const MAX_BOUND_ID: usize = 1024;
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
    #[error("backup file format version {0} is not supported (this gateway reads version 2)")]
    UnsupportedVersion(u8),
    /// A version 1 backup: not bound to a gateway, so not trusted to be this one's.
    #[error(
        "backup file has format version 1, which does not record the gateway it belongs to; \
         it is not used: let the gateway fetch its configuration from the management plane \
         again, and it writes a version 2 backup"
    )]
    Unbound,
    /// Written by another gateway (its file copied here, or a token of another
    /// gateway given to this one).
    #[error(
        "backup file belongs to gateway `{file}`, not to this gateway `{this}`: it is not used \
         and not overwritten; remove it (or give this gateway its own backup directory)"
    )]
    OtherGateway {
        /// The gateway id the file is bound to.
        file: String,
        /// This gateway's id (from its token).
        this: String,
    },
    /// The snapshot inside names another store than the header.
    #[error("backup snapshot comes from store `{snapshot}`, its header says `{header}`")]
    StoreMismatch {
        /// The store identity in the header.
        header: String,
        /// The store identity in the snapshot.
        snapshot: String,
    },
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
    /// The snapshot in the backup is not signed with the management key this
    /// gateway was given.
    #[error("backup snapshot refused: {0}")]
    Signature(super::signature::SignatureError),
    /// The backup records another management key than the one this gateway
    /// trusts.
    #[error("backup refused: {0}")]
    PinMismatch(super::trust::PinMismatch),
    /// A gateway id or store identity too long for the header.
    #[error("gateway id or store identity longer than {MAX_BOUND_ID} bytes")]
    IdTooLong,
}

/// Whose a backup file is: what its header binds it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The gateway the file belongs to (the id its token names).
    pub gateway_id: String,
    /// The management store the snapshot came from (empty when unknown).
    pub store_id: String,
    /// The snapshot's signature header as received (empty when unsigned).
    pub signature: String,
    /// The management key the signature verified under (the gateway's
    /// configured key or its pin); kept so a restart keeps the pin.
    pub signing_key: Option<super::signature::PublicKey>,
}

/// Between the signature and the key in the header's signature field: neither
/// a signature header value nor base64 holds a space.
const KEY_SEPARATOR: &str = " key=";

/// A backup file opened: its revision, binding and the snapshot JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBackup {
    /// The revision in the header.
    pub revision: u64,
    /// The gateway and store in the header.
    pub binding: Binding,
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

// A 32-byte key is always accepted by AES-256-GCM: the expect cannot fire.
#[allow(clippy::expect_used)]
fn aead_key(key: &BackupKey) -> LessSafeKey {
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_bytes()).expect("AES-256 key length");
    LessSafeKey::new(unbound)
}

/// Encrypts `snapshot_json` (of revision `revision`) into backup file bytes
/// bound to `binding`.
pub fn seal(
    revision: u64,
    snapshot_json: &[u8],
    binding: &Binding,
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, BackupError> {
    let signature = match &binding.signing_key {
        Some(key) => format!("{}{KEY_SEPARATOR}{}", binding.signature, key.to_base64()),
        None => binding.signature.clone(),
    };
    let fields = [
        binding.gateway_id.as_bytes(),
        binding.store_id.as_bytes(),
        signature.as_bytes(),
    ];
    if fields.iter().any(|f| f.len() > MAX_BOUND_ID) {
        return Err(BackupError::IdTooLong);
    }
    let ct_len = snapshot_json.len() + TAG_LEN;
    let header_len = BOUND_HEADER_MIN + fields.iter().map(|f| f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(header_len + ct_len + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.push(BOUND_VERSION);
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(&nonce);
    for id in fields {
        // At most MAX_BOUND_ID: fits in two bytes.
        out.extend_from_slice(&(id.len() as u16).to_be_bytes());
        out.extend_from_slice(id);
    }
    out.extend_from_slice(&(ct_len as u64).to_be_bytes());
    encrypt_and_sum(out, snapshot_json, key, nonce)
}

/// Appends the ciphertext of `plaintext` (with `out`, the header, as associated
/// data) and the checksum.
fn encrypt_and_sum(
    mut out: Vec<u8>,
    plaintext: &[u8],
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, BackupError> {
    let mut body = plaintext.to_vec();
    aead_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..]),
            &mut body,
        )
        .map_err(|_| BackupError::TooLarge)?;
    out.extend_from_slice(&body);
    let checksum = digest(&SHA256, &out);
    out.extend_from_slice(checksum.as_ref());
    Ok(out)
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
    encrypt_and_sum(out, plaintext, key, nonce)
}

/// Checks and decrypts backup file bytes written for gateway `gateway_id`; a
/// file of another gateway is refused before it is decrypted.
pub fn open(file: &[u8], key: &BackupKey, gateway_id: &str) -> Result<OpenedBackup, BackupError> {
    let actual = file.len() as u64;
    if file.len() < BOUND_HEADER_MIN {
        let n = file.len().min(MAGIC.len());
        return if file[..n] != MAGIC[..n] {
            Err(BackupError::BadMagic)
        } else if file.len() > 8 && file[8] == VERSION {
            Err(BackupError::Unbound)
        } else {
            Err(BackupError::Truncated {
                expected: (BOUND_HEADER_MIN + TAG_LEN + CHECKSUM_LEN) as u64,
                actual,
            })
        };
    }
    if &file[..8] != MAGIC {
        return Err(BackupError::BadMagic);
    }
    match file[8] {
        BOUND_VERSION => {}
        VERSION => return Err(BackupError::Unbound),
        other => return Err(BackupError::UnsupportedVersion(other)),
    }
    let revision = u64::from_be_bytes(array(&file[9..17]));
    let nonce: [u8; NONCE_LEN] = array(&file[17..29]);
    let mut at = 29;
    let mut ids = Vec::with_capacity(3);
    for _ in 0..3 {
        let len = file
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes(array(b))))
            .ok_or(BackupError::Truncated {
                expected: (at + 2 + 8 + TAG_LEN + CHECKSUM_LEN) as u64,
                actual,
            })?;
        let id = file
            .get(at + 2..at + 2 + len)
            .ok_or(BackupError::Truncated {
                expected: (at + 2 + len + 8 + TAG_LEN + CHECKSUM_LEN) as u64,
                actual,
            })?;
        ids.push(id);
        at += 2 + len;
    }
    let ct_len = file
        .get(at..at + 8)
        .map(|b| u64::from_be_bytes(array(b)))
        .ok_or(BackupError::Truncated {
            expected: (at + 8 + TAG_LEN + CHECKSUM_LEN) as u64,
            actual,
        })?;
    let header_len = at + 8;
    let expected = ct_len.saturating_add((header_len + CHECKSUM_LEN) as u64);
    if actual < expected {
        return Err(BackupError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(BackupError::TrailingBytes { expected, actual });
    }
    let computed = digest(&SHA256, &file[..file.len() - CHECKSUM_LEN]);
    if computed.as_ref() != &file[file.len() - CHECKSUM_LEN..] {
        return Err(BackupError::ChecksumMismatch);
    }
    // Whole and undamaged: which gateway it claims is worth saying even before
    // the key is tried (the claim is authenticated just below).
    let signature_field = String::from_utf8_lossy(ids[2]);
    let (signature, signing_key) = match signature_field.split_once(KEY_SEPARATOR) {
        Some((signature, key)) => (
            signature.to_owned(),
            Some(super::signature::PublicKey::from_base64(key).map_err(BackupError::Signature)?),
        ),
        None => (signature_field.into_owned(), None),
    };
    let binding = Binding {
        gateway_id: String::from_utf8_lossy(ids[0]).into_owned(),
        store_id: String::from_utf8_lossy(ids[1]).into_owned(),
        signature,
        signing_key,
    };
    if binding.gateway_id != gateway_id {
        return Err(BackupError::OtherGateway {
            file: binding.gateway_id,
            this: gateway_id.to_owned(),
        });
    }
    let (header, rest) = file.split_at(header_len);
    let ciphertext = &rest[..rest.len() - CHECKSUM_LEN];
    let body = decrypt(key, nonce, header, ciphertext)?;
    Ok(OpenedBackup {
        revision,
        binding,
        snapshot_json: body,
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
    let body = decrypt(key, nonce, header, ciphertext)?;
    Ok((revision, body))
}

/// The plaintext of `ciphertext` (tag included) sealed under `key` and `nonce`
/// with `header` as associated data.
fn decrypt(
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
    header: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, BackupError> {
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
    Ok(body)
}

/// Opens a backup file of gateway `gateway_id` and parses the snapshot in it,
/// checking its revision and store against the header.
pub fn open_snapshot(
    file: &[u8],
    key: &BackupKey,
    gateway_id: &str,
) -> Result<Snapshot, BackupError> {
    open_verified(file, key, gateway_id, None)
}

/// [`open_snapshot`], and with `management_key` the snapshot's signature (kept
/// in the header as received) must verify under it.
pub fn open_verified(
    file: &[u8],
    key: &BackupKey,
    gateway_id: &str,
    management_key: Option<&super::signature::PublicKey>,
) -> Result<Snapshot, BackupError> {
    let mut trust = super::trust::Trust::new(management_key.into_iter().cloned().collect());
    open_trusted(file, key, gateway_id, &mut trust)
}

/// [`open_snapshot`] under `trust`: the key recorded in the file must be the
/// trusted one (and is pinned when nothing is trusted yet), and the snapshot's
/// signature must verify under the key then trusted.
pub fn open_trusted(
    file: &[u8],
    key: &BackupKey,
    gateway_id: &str,
    trust: &mut super::trust::Trust,
) -> Result<Snapshot, BackupError> {
    let opened = open(file, key, gateway_id)?;
    let mut adopted = trust.clone();
    if let Err(mismatch) = adopted.adopt_backup(opened.binding.signing_key.as_ref()) {
        // Saved during a rotation's overlap, the snapshot also carries the
        // signature of a key trusted now: that is enough.
        let signature = Some(opened.binding.signature.as_str()).filter(|s| !s.is_empty());
        if adopted
            .check(&opened.snapshot_json, signature, None)
            .is_err()
        {
            return Err(BackupError::PinMismatch(mismatch));
        }
    }
    if !adopted.keys().is_empty() {
        let signature = Some(opened.binding.signature.as_str()).filter(|s| !s.is_empty());
        adopted
            .check(&opened.snapshot_json, signature, None)
            .map_err(BackupError::Signature)?;
    }
    let snapshot = Snapshot::from_json(&opened.snapshot_json)
        .map_err(|e| BackupError::Invalid(Box::new(e)))?;
    if snapshot.revision != opened.revision {
        return Err(BackupError::RevisionMismatch {
            header: opened.revision,
            snapshot: snapshot.revision,
        });
    }
    let store = snapshot.store_id.as_deref().unwrap_or_default();
    if store != opened.binding.store_id {
        return Err(BackupError::StoreMismatch {
            header: opened.binding.store_id,
            snapshot: store.to_owned(),
        });
    }
    // Only a backup that is whole and verified moves the pin.
    *trust = adopted;
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

    const JSON: &[u8] = br#"{"revision": 42, "apis": [], "storeId": "st"}"#;
    const GW: &str = "gw-1";

    fn key(b: u8) -> BackupKey {
        BackupKey::from_bytes([b; 32])
    }

    fn binding(gateway: &str) -> Binding {
        Binding {
            gateway_id: gateway.into(),
            store_id: "st".into(),
            signature: String::new(),
            signing_key: None,
        }
    }

    fn sample() -> Vec<u8> {
        seal(42, JSON, &binding(GW), &key(1), [9; 12]).unwrap()
    }

    /// Where the ciphertext length starts in [`sample`].
    const CT_LEN_AT: usize = 29 + 2 + 4 + 2 + 2 + 2;
    const SAMPLE_HEADER: usize = CT_LEN_AT + 8;

    #[test]
    fn the_signing_key_is_kept_beside_the_signature_and_authenticated() {
        let signing_key = crate::sync::signature::PublicKey::from_bytes([9; 32]);
        let bound = Binding {
            signature: "ed25519=c2ln".into(),
            signing_key: Some(signing_key.clone()),
            ..binding("gw")
        };
        let file = seal(7, JSON, &bound, &key(1), [3; NONCE_LEN]).unwrap();
        let opened = open(&file, &key(1), "gw").unwrap();
        assert_eq!(opened.binding, bound);
        // Without a key, the field reads back as before.
        let plain = Binding {
            signature: "ed25519=c2ln".into(),
            ..binding("gw")
        };
        let file = seal(7, JSON, &plain, &key(1), [3; NONCE_LEN]).unwrap();
        assert_eq!(open(&file, &key(1), "gw").unwrap().binding, plain);
    }

    #[test]
    fn round_trip() {
        let file = sample();
        assert_eq!(
            file.len(),
            SAMPLE_HEADER + JSON.len() + TAG_LEN + CHECKSUM_LEN
        );
        assert_eq!(&file[..8], MAGIC);
        assert_eq!(file[8], BOUND_VERSION);
        let opened = open(&file, &key(1), GW).unwrap();
        assert_eq!(opened.revision, 42);
        assert_eq!(opened.binding, binding(GW));
        assert_eq!(opened.snapshot_json, JSON);
        assert_eq!(open_snapshot(&file, &key(1), GW).unwrap().revision, 42);
        // The plaintext does not appear in the file.
        assert!(!file.windows(8).any(|w| w == b"revision"));
        // An empty body round-trips too.
        let empty = seal(0, b"", &binding(GW), &key(1), [0; 12]).unwrap();
        assert_eq!(open(&empty, &key(1), GW).unwrap().snapshot_json, b"");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let file = sample();
        for i in 0..file.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                let err = open(&bad, &key(1), GW).unwrap_err();
                let expected_kind = match i {
                    0..=7 => matches!(err, BackupError::BadMagic),
                    8 => matches!(err, BackupError::UnsupportedVersion(_)),
                    // The id lengths and the ciphertext length.
                    29 | 30 | 35 | 36 | 39 | 40 | CT_LEN_AT..SAMPLE_HEADER => matches!(
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
            let err = open(&file[..len], &key(1), GW).unwrap_err();
            assert!(
                matches!(err, BackupError::Truncated { .. }),
                "length {len}: {err}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            open(&longer, &key(1), GW),
            Err(BackupError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn wrong_key_and_tampering_fail_authentication() {
        let file = sample();
        assert_eq!(open(&file, &key(2), GW), Err(BackupError::Authentication));
        // Tampering that fixes up the checksum: a changed ciphertext byte...
        let refresh = |mut bad: Vec<u8>| {
            let end = bad.len() - CHECKSUM_LEN;
            let sum = digest(&SHA256, &bad[..end]);
            bad[end..].copy_from_slice(sum.as_ref());
            bad
        };
        let mut bad = file.clone();
        bad[SAMPLE_HEADER + 3] ^= 1;
        assert_eq!(
            open(&refresh(bad), &key(1), GW),
            Err(BackupError::Authentication)
        );
        // ...or a changed revision in the header (authenticated as associated data)...
        let mut bad = file.clone();
        bad[16] ^= 1;
        assert_eq!(
            open(&refresh(bad), &key(1), GW),
            Err(BackupError::Authentication)
        );
        // ...or a changed store identity.
        let mut bad = file.clone();
        bad[37] ^= 1;
        assert_eq!(
            open(&refresh(bad), &key(1), GW),
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
            BackupError::Unbound,
            BackupError::OtherGateway {
                file: "a".into(),
                this: "b".into(),
            },
            BackupError::StoreMismatch {
                header: "a".into(),
                snapshot: "b".into(),
            },
            BackupError::IdTooLong,
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
        let b = binding(GW);
        let file = seal(3, b"{\"revision\": 3, \"bogus\": 1}", &b, &key(1), [0; 12]).unwrap();
        assert!(matches!(
            open_snapshot(&file, &key(1), GW),
            Err(BackupError::Invalid(_))
        ));
        let file = seal(3, b"{\"revision\": 3}", &b, &key(1), [0; 12]).unwrap();
        assert_eq!(
            open_snapshot(&file, &key(1), GW),
            Err(BackupError::StoreMismatch {
                header: "st".into(),
                snapshot: String::new()
            })
        );
        let file = seal(3, b"{\"revision\": 4}", &b, &key(1), [0; 12]).unwrap();
        assert_eq!(
            open_snapshot(&file, &key(1), GW),
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
        let a = seal(1, JSON, &binding(GW), &key(1), seq.next_nonce()).unwrap();
        let b = seal(1, JSON, &binding(GW), &key(1), seq.next_nonce()).unwrap();
        assert_ne!(a, b);
        assert!(open(&a, &key(1), GW).is_ok() && open(&b, &key(1), GW).is_ok());
    }

    #[test]
    fn another_gateways_file_is_refused_naming_both() {
        // The same key: only the binding tells the files apart.
        let theirs = seal(42, JSON, &binding("gw-2"), &key(1), [9; 12]).unwrap();
        let err = open(&theirs, &key(1), GW).unwrap_err();
        assert_eq!(
            err,
            BackupError::OtherGateway {
                file: "gw-2".into(),
                this: GW.into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("`gw-2`") && text.contains("`gw-1`"), "{text}");
        // Rewriting the gateway id in the header (checksum fixed up) does not
        // make it this gateway's: the id is authenticated.
        let mut forged = seal(42, JSON, &binding("gw-9"), &key(1), [9; 12]).unwrap();
        forged[31..35].copy_from_slice(GW.as_bytes());
        let end = forged.len() - CHECKSUM_LEN;
        let sum = digest(&SHA256, &forged[..end]);
        forged[end..].copy_from_slice(sum.as_ref());
        assert_eq!(open(&forged, &key(1), GW), Err(BackupError::Authentication));
    }

    #[test]
    fn version_1_files_are_refused_with_what_to_do() {
        let old = seal_framed(MAGIC, 42, JSON, &key(1), [9; 12]).unwrap();
        let err = open(&old, &key(1), GW).unwrap_err();
        assert_eq!(err, BackupError::Unbound);
        assert!(err.to_string().contains("fetch"), "{err}");
        assert_eq!(open(&old[..20], &key(1), GW), Err(BackupError::Unbound));
    }

    #[test]
    fn ids_too_long_are_refused_when_sealing() {
        let long = "g".repeat(MAX_BOUND_ID + 1);
        assert_eq!(
            seal(1, JSON, &binding(&long), &key(1), [0; 12]),
            Err(BackupError::IdTooLong)
        );
    }
}
