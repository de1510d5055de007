//! The key the configuration backup is encrypted under: 32 bytes, given as 64 hex
//! characters or as base64.

use std::fmt;

use crate::expr::encoding::base64_decode;

/// Why a backup key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupKeyError {
    /// Nothing was given.
    #[error("the backup key is empty; give 32 bytes as 64 hex characters or as base64")]
    Empty,
    /// Hex digits only, but not 64 of them.
    #[error("the backup key has {0} hex characters; it needs 64 (32 bytes)")]
    HexLength(usize),
    /// Valid base64 of something other than 32 bytes.
    #[error("the backup key decodes from base64 to {0} bytes; it needs 32")]
    Base64Length(usize),
    /// Neither hex nor base64.
    #[error("the backup key is neither 64 hex characters nor base64 of 32 bytes")]
    Encoding,
}

/// A 256-bit AES-GCM key for the configuration backup. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupKey([u8; BackupKey::LEN]);

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    /// Key length in bytes.
    pub const LEN: usize = 32;

    /// A key from raw bytes (e.g. fresh random ones).
    pub fn from_bytes(bytes: [u8; BackupKey::LEN]) -> Self {
        BackupKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; BackupKey::LEN] {
        &self.0
    }

    /// The key as 64 lower-case hex characters (what [`parse`](Self::parse) reads).
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(2 * BackupKey::LEN);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// Reads a key given as 64 hex characters or as base64 (standard or URL
    /// alphabet, padding optional) of 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<BackupKey, BackupKeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(BackupKeyError::Empty);
        }
        if text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() != 2 * BackupKey::LEN {
                return Err(BackupKeyError::HexLength(text.len()));
            }
            let mut out = [0u8; BackupKey::LEN];
            for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
                out[i] = (hex_digit(pair[0]) << 4) | hex_digit(pair[1]);
            }
            return Ok(BackupKey(out));
        }
        base64_key(text)
    }
}

fn base64_key(text: &str) -> Result<BackupKey, BackupKeyError> {
    let bytes = base64_decode(text, false).ok_or(BackupKeyError::Encoding)?;
    let key: [u8; BackupKey::LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| BackupKeyError::Base64Length(bytes.len()))?;
    Ok(BackupKey(key))
}

fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::encoding::base64_encode;

    fn sample() -> [u8; 32] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5))
    }

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let key = BackupKey::from_bytes(sample());
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(BackupKey::parse(&hex), Ok(key.clone()));
        assert_eq!(BackupKey::parse(&hex.to_uppercase()), Ok(key.clone()));
        assert_eq!(BackupKey::parse(&format!("  {hex}\n")), Ok(key.clone()));
        let b64 = base64_encode(&sample());
        assert_eq!(BackupKey::parse(&b64), Ok(key.clone()));
        assert_eq!(BackupKey::parse(b64.trim_end_matches('=')), Ok(key.clone()));
        let url = b64.replace('+', "-").replace('/', "_");
        assert_eq!(BackupKey::parse(&url), Ok(key));
    }

    #[test]
    fn bad_keys_say_why() {
        assert_eq!(BackupKey::parse("  "), Err(BackupKeyError::Empty));
        assert_eq!(
            BackupKey::parse(&"ab".repeat(31)),
            Err(BackupKeyError::HexLength(62))
        );
        assert_eq!(
            BackupKey::parse(&base64_encode(&[1u8; 16])),
            Err(BackupKeyError::Base64Length(16))
        );
        assert_eq!(
            BackupKey::parse("not a key!"),
            Err(BackupKeyError::Encoding)
        );
        for err in [
            BackupKeyError::Empty,
            BackupKeyError::HexLength(3),
            BackupKeyError::Base64Length(3),
            BackupKeyError::Encoding,
        ] {
            assert!(err.to_string().contains("backup key"));
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let key = BackupKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "BackupKey(..)");
    }
}
