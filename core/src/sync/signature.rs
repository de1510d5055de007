//! Signed configuration: the management plane signs every snapshot it sends
//! with an Ed25519 key, and a gateway checks the signature against the public
//! key it was given (or pinned on first use) before it applies the snapshot.
//!
//! The signature covers the snapshot JSON bytes exactly as sent, and travels in
//! the [`SIGNATURE_HEADER`] response header as `ed25519=<base64>` (two, comma
//! separated, during a key rotation's overlap: the new key's first), with the
//! signing keys in [`SIGNING_KEY_HEADER`] in the same order. This module
//! holds what both sides share: parsing and checking keys and signatures, and
//! the key fingerprint shown to operators. It never makes keys (the management
//! plane does, from the OS random source).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ED25519};

/// The response header that carries a snapshot's signature.
pub const SIGNATURE_HEADER: &str = "Portcullis-Signature";
/// The response header that carries the public key (base64) the snapshot is
/// signed with, so a gateway without a configured key can pin it on first use.
/// It proves nothing by itself: the signature must verify under it, and once
/// pinned only the pinned key counts.
pub const SIGNING_KEY_HEADER: &str = "Portcullis-Signing-Key";
/// The scheme prefix of the header value.
pub const SCHEME: &str = "ed25519=";
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why a key or a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not base64 of 32 bytes.
    #[error("management public key must be base64 of 32 bytes (an Ed25519 key)")]
    BadKey,
    /// The snapshot came without a signature.
    #[error("the snapshot is not signed (no {SIGNATURE_HEADER} header)")]
    Missing,
    /// The header is not `ed25519=<base64 of 64 bytes>`.
    #[error("the {SIGNATURE_HEADER} header is not `ed25519=<base64 of 64 bytes>`")]
    Malformed,
    /// The signature does not verify under the key.
    #[error("the snapshot's signature does not verify under management key {fingerprint}")]
    Invalid {
        /// The fingerprint of the key tried.
        fingerprint: String,
    },
}

/// A management plane's Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key from base64 (standard alphabet, padding optional; surrounding
    /// whitespace ignored), as printed in `MANAGEMENT_SIGNING_KEY=`.
    pub fn from_base64(text: &str) -> Result<PublicKey, SignatureError> {
        let text = text.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .map_err(|_| SignatureError::BadKey)?;
        let bytes: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| SignatureError::BadKey)?;
        Ok(PublicKey(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Base64 (standard, padded).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// `SHA256:` and the first 16 bytes of the key's SHA-256, hex, in pairs:
    /// short enough to compare by eye between a log line and the plane's output.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// Checks `signature_header` (the value of [`SIGNATURE_HEADER`], if any)
    /// over `body`: one of its signatures (a plane rotating its key sends two)
    /// must verify under this key.
    pub fn verify(
        &self,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<(), SignatureError> {
        let signatures = parse_header(signature_header.ok_or(SignatureError::Missing)?)?;
        if signatures.iter().any(|s| self.signs(body, s)) {
            Ok(())
        } else {
            Err(SignatureError::Invalid {
                fingerprint: self.fingerprint(),
            })
        }
    }

    fn signs(&self, body: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(body, signature)
            .is_ok()
    }
}

/// The fingerprint of public key bytes; see [`PublicKey::fingerprint`].
pub fn fingerprint(public_key: &[u8]) -> String {
    let sum = digest(&SHA256, public_key);
    let pairs: Vec<String> = sum.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("SHA256:{}", pairs.join(":"))
}

/// The header value for a signature: `ed25519=<base64>`.
pub fn header_value(signature: &[u8]) -> String {
    format!("{SCHEME}{}", STANDARD.encode(signature))
}

/// Several header values (the current key's first) as one: `a, b`.
pub fn join_values<S: AsRef<str>>(values: &[S]) -> String {
    let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
    values.join(", ")
}

/// The keys of a [`SIGNING_KEY_HEADER`] value: comma-separated base64, the
/// plane's current key first.
pub fn parse_keys(value: &str) -> Result<Vec<PublicKey>, SignatureError> {
    value.split(',').map(PublicKey::from_base64).collect()
}

/// The signatures of a [`SIGNATURE_HEADER`] value: `ed25519=<base64>`, several
/// separated by commas.
fn parse_header(value: &str) -> Result<Vec<[u8; SIGNATURE_LEN]>, SignatureError> {
    value
        .split(',')
        .map(|one| {
            let encoded = one
                .trim()
                .strip_prefix(SCHEME)
                .ok_or(SignatureError::Malformed)?;
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| SignatureError::Malformed)?;
            bytes.try_into().map_err(|_| SignatureError::Malformed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn public(pair: &Ed25519KeyPair) -> PublicKey {
        PublicKey::from_bytes(pair.public_key().as_ref().try_into().unwrap())
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let pair = pair();
        let key = public(&pair);
        let body = br#"{"revision":3}"#;
        let header = header_value(pair.sign(body).as_ref());
        assert!(header.starts_with("ed25519="));
        assert_eq!(key.verify(body, Some(&header)), Ok(()));
        let mut flipped = body.to_vec();
        flipped[3] ^= 1;
        assert!(matches!(
            key.verify(&flipped, Some(&header)),
            Err(SignatureError::Invalid { .. })
        ));
        // Another plane's key.
        let other = public(&self::pair());
        let err = other.verify(body, Some(&header)).unwrap_err();
        assert!(err.to_string().contains(&other.fingerprint()), "{err}");
    }

    #[test]
    fn any_of_several_signatures_verifies() {
        let (old, new) = (pair(), pair());
        let body = br#"{"revision":3}"#;
        let header = join_values(&[
            header_value(new.sign(body).as_ref()),
            header_value(old.sign(body).as_ref()),
        ]);
        assert_eq!(public(&old).verify(body, Some(&header)), Ok(()));
        assert_eq!(public(&new).verify(body, Some(&header)), Ok(()));
        assert!(public(&pair()).verify(body, Some(&header)).is_err());
        let keys = join_values(&[public(&new).to_base64(), public(&old).to_base64()]);
        assert_eq!(parse_keys(&keys), Ok(vec![public(&new), public(&old)]));
        assert_eq!(
            public(&old).verify(body, Some(&format!("{header}, rsa=AAAA"))),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn missing_and_malformed_signatures_are_refused() {
        let key = public(&pair());
        assert_eq!(key.verify(b"{}", None), Err(SignatureError::Missing));
        for bad in [
            "",
            "ed25519=",
            "rsa=AAAA",
            "ed25519=not base64!",
            "ed25519=AAAA",
        ] {
            assert_eq!(
                key.verify(b"{}", Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_round_trip_through_base64_and_bad_ones_are_refused() {
        let key = public(&pair());
        let text = key.to_base64();
        assert_eq!(PublicKey::from_base64(&text), Ok(key.clone()));
        assert_eq!(
            PublicKey::from_base64(&format!(" {} \n", text.trim_end_matches('='))),
            Ok(key.clone())
        );
        assert_eq!(PublicKey::from_base64("AAAA"), Err(SignatureError::BadKey));
        assert_eq!(PublicKey::from_base64("%%%"), Err(SignatureError::BadKey));
        let fp = key.fingerprint();
        assert!(
            fp.starts_with("SHA256:") && fp.len() == 7 + 16 * 3 - 1,
            "{fp}"
        );
        assert!(format!("{key:?}").contains(&fp));
    }
}
