//! The renewed gateway token kept next to the configuration backup
//! (`token.backup`), so a gateway restarted after the operator's token expired
//! still starts with a valid one.
//!
//! Sealed like the backup (same framing, AES-256-GCM under the backup key, SHA-256
//! checksum) with its own magic `PCLSTOKN`, so neither file passes for the other.
//! The plaintext is JSON: the token and the SHA-256 of the operator's token the
//! renewals started from. At start the kept token is used instead of the given
//! one only when it is for the same gateway, outlives it, has not expired, and was
//! renewed from that very token: an operator who gives the gateway a new token
//! (after regenerating a key, say) is always obeyed.

use ring::aead::NONCE_LEN;
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};

use super::backup::{self, BackupError, NonceSequence};
use super::backup_key::BackupKey;
use super::token;

/// The file's name in the backup directory.
pub const TOKEN_FILE_NAME: &str = "token.backup";
/// The first bytes of the file.
pub const MAGIC: &[u8; 8] = b"PCLSTOKN";

/// Why a kept token was not used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Torn, tampered with or under another key.
    #[error(transparent)]
    Sealed(#[from] BackupError),
    /// Whole, but its contents are not a kept token.
    #[error("the kept token file holds no token: {0}")]
    Contents(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    token: String,
    origin: String,
}

/// The fingerprint of the operator's token a chain of renewals started from.
pub fn origin_of(operator_token: &str) -> String {
    let body = operator_token.trim();
    let body = body
        .split_once(' ')
        .map_or(body, |(_, rest)| rest.trim_start());
    digest(&SHA256, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the renewal glue needs to keep renewed tokens: the key, the origin and
/// nonces that never repeat.
#[derive(Debug)]
pub struct TokenKeeper {
    key: BackupKey,
    origin: String,
    nonces: NonceSequence,
}

impl TokenKeeper {
    /// Keeps tokens renewed from `operator_token` under `key`; `nonce_base`: 12
    /// random bytes.
    pub fn new(key: BackupKey, operator_token: &str, nonce_base: [u8; NONCE_LEN]) -> TokenKeeper {
        TokenKeeper {
            key,
            origin: origin_of(operator_token),
            nonces: NonceSequence::new(nonce_base),
        }
    }

    /// The file's bytes for a renewed token.
    pub fn seal(&mut self, token: &str, expiry_unix: u64) -> Result<Vec<u8>, BackupError> {
        let nonce = self.nonces.next_nonce();
        seal(token, &self.origin, expiry_unix, &self.key, nonce)
    }
}

/// The file's bytes for `token`, renewed from the operator token of `origin`.
pub fn seal(
    token: &str,
    origin: &str,
    expiry_unix: u64,
    key: &BackupKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, BackupError> {
    let kept = Kept {
        token: token.to_owned(),
        origin: origin.to_owned(),
    };
    // Two strings: serialization cannot fail.
    let json = serde_json::to_vec(&kept).unwrap_or_default();
    backup::seal_framed(MAGIC, expiry_unix, &json, key, nonce)
}

/// The token in the file, with the origin it was renewed from.
fn open(file: &[u8], key: &BackupKey) -> Result<Kept, TokenFileError> {
    let (_, json) = backup::open_framed(MAGIC, file, key)?;
    serde_json::from_slice(&json).map_err(|e| TokenFileError::Contents(e.to_string()))
}

/// Which token a gateway starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartToken {
    /// The operator's token (`--token`).
    Given,
    /// The kept, renewed token: this one.
    Kept(String),
    /// The kept one is not used, for this reason (to log).
    KeptUnused(String),
}

/// Picks the token to start with: the kept one (file bytes `kept`) when it
/// was renewed from `given`, is for the same gateway, outlives it and is valid at
/// `now_unix`; else the given one.
pub fn start_token(given: &str, kept: Option<&[u8]>, key: &BackupKey, now_unix: u64) -> StartToken {
    let Some(bytes) = kept else {
        return StartToken::Given;
    };
    let kept = match open(bytes, key) {
        Ok(kept) => kept,
        Err(e) => return StartToken::KeptUnused(e.to_string()),
    };
    let (Ok(given_parsed), Ok(kept_parsed)) = (token::parse(given), token::parse(&kept.token))
    else {
        return StartToken::KeptUnused("a token cannot be read".to_owned());
    };
    if kept.origin != origin_of(given) {
        return StartToken::KeptUnused(
            "it was renewed from another token than the one given: the given one is used"
                .to_owned(),
        );
    }
    if kept_parsed.gateway_id != given_parsed.gateway_id {
        return StartToken::KeptUnused("it is for another gateway".to_owned());
    }
    if kept_parsed.expiry_unix <= given_parsed.expiry_unix {
        return StartToken::Given;
    }
    if kept_parsed.expiry_unix <= now_unix {
        return StartToken::KeptUnused("it has expired too".to_owned());
    }
    StartToken::Kept(kept.token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::token::sign;

    const NOW: u64 = 1_800_000_000;

    fn key(b: u8) -> BackupKey {
        BackupKey::from_bytes([b; 32])
    }

    #[test]
    fn a_kept_renewal_of_the_given_token_wins_when_newer() {
        let given = sign("gw", NOW - 10, b"k");
        let renewed = sign("gw", NOW + 1000, b"k");
        let file = seal(&renewed, &origin_of(&given), NOW + 1000, &key(1), [3; 12]).unwrap();
        assert_eq!(
            start_token(&given, Some(&file), &key(1), NOW),
            StartToken::Kept(renewed.clone())
        );
        // The bare form of the given token has the same origin.
        let bare = given.trim_start_matches("GatewayKey ");
        assert_eq!(
            start_token(bare, Some(&file), &key(1), NOW),
            StartToken::Kept(renewed)
        );
        assert_eq!(start_token(&given, None, &key(1), NOW), StartToken::Given);
    }

    #[test]
    fn a_kept_token_is_not_used_when_it_should_not_be() {
        let given = sign("gw", NOW + 100, b"k");
        let origin = origin_of(&given);
        let seal_kept = |t: &str| seal(t, &origin, 0, &key(1), [3; 12]).unwrap();
        // Another key: not opened.
        let file = seal_kept(&sign("gw", NOW + 1000, b"k"));
        assert!(matches!(
            start_token(&given, Some(&file), &key(2), NOW),
            StartToken::KeptUnused(_)
        ));
        // Tampered.
        let mut torn = file.clone();
        let mid = torn.len() / 2;
        torn[mid] ^= 1;
        assert!(matches!(
            start_token(&given, Some(&torn), &key(1), NOW),
            StartToken::KeptUnused(_)
        ));
        // Another gateway, older, expired.
        let other = seal_kept(&sign("gw-2", NOW + 1000, b"k"));
        assert!(matches!(
            start_token(&given, Some(&other), &key(1), NOW),
            StartToken::KeptUnused(_)
        ));
        let older = seal_kept(&sign("gw", NOW + 50, b"k"));
        assert_eq!(
            start_token(&given, Some(&older), &key(1), NOW),
            StartToken::Given
        );
        let expired = seal_kept(&sign("gw", NOW + 500, b"k"));
        assert!(matches!(
            start_token(&given, Some(&expired), &key(1), NOW + 600),
            StartToken::KeptUnused(_)
        ));
        // The operator gave a new token: it is obeyed.
        let new_given = sign("gw", NOW + 200, b"k2");
        assert!(matches!(
            start_token(&new_given, Some(&file), &key(1), NOW),
            StartToken::KeptUnused(_)
        ));
        // The backup's own file never passes for a kept token.
        let binding = backup::Binding {
            gateway_id: "gw".into(),
            store_id: String::new(),
            signature: String::new(),
            signing_key: None,
        };
        let backup = backup::seal(1, b"{}", &binding, &key(1), [3; 12]).unwrap();
        assert!(matches!(
            start_token(&given, Some(&backup), &key(1), NOW),
            StartToken::KeptUnused(_)
        ));
    }
}
