//! Which management key a gateway trusts, and whether a fetched snapshot is
//! signed by it.
//!
//! A key given with `--management-public-key` is trusted from the start. Without
//! one, the gateway trusts on first use: the first snapshot that comes signed,
//! with the plane's public key next to the signature (the
//! [`SIGNING_KEY_HEADER`](super::signature::SIGNING_KEY_HEADER)) and a signature
//! that verifies under that key, pins the key; from then on only snapshots
//! signed by the pinned key are accepted. An unsigned snapshot (an older plane)
//! before any pin is served but unverified, and pins nothing. The pin is kept in
//! the backup, so a gateway restarted from it keeps the same key.

use super::signature::{PublicKey, SignatureError};

/// The management key a gateway checks snapshots against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Given by the operator (`--management-public-key`).
    Configured(PublicKey),
    /// Pinned on first use (or from the backup).
    Pinned(PublicKey),
    /// No key yet: the next signed snapshot pins its key.
    Unpinned,
}

/// A snapshot accepted by [`Trust::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Signed by the trusted key.
    Verified(PublicKey),
    /// Signed by the key next to the signature, which nothing was trusted
    /// before: the caller pins it ([`Trust::pin`]).
    FirstUse(PublicKey),
    /// Not signed (or signed without the key beside it) and nothing pinned yet:
    /// served unverified.
    Unverified,
}

/// Why a backup's pinned key was not adopted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the backup was signed under management key {pinned}, but this gateway trusts \
     {trusted}; if the management plane's key was changed on purpose, remove the \
     backup file (the gateway fetches again), otherwise find out who answers at the \
     management URL"
)]
pub struct PinMismatch {
    /// The fingerprint of the key in the backup.
    pub pinned: String,
    /// The fingerprint of the key trusted.
    pub trusted: String,
}

impl Trust {
    /// The trust a gateway starts with: its configured key, or none yet.
    pub fn new(configured: Option<PublicKey>) -> Trust {
        configured.map_or(Trust::Unpinned, Trust::Configured)
    }

    /// The key snapshots must be signed with, if any.
    pub fn key(&self) -> Option<&PublicKey> {
        match self {
            Trust::Configured(key) | Trust::Pinned(key) => Some(key),
            Trust::Unpinned => None,
        }
    }

    /// Checks a snapshot `body` with its `signature` header and `signing_key`
    /// header (either may be absent).
    pub fn check(
        &self,
        body: &[u8],
        signature: Option<&str>,
        signing_key: Option<&str>,
    ) -> Result<Accepted, SignatureError> {
        if let Some(key) = self.key() {
            key.verify(body, signature)?;
            return Ok(Accepted::Verified(key.clone()));
        }
        match (signature, signing_key) {
            (Some(signature), Some(text)) => {
                let key = PublicKey::from_base64(text)?;
                // A key that does not sign the body it came with is worth
                // nothing, and a snapshot that fails it is not served: whoever
                // answers claims to sign, so an unsigned fallback would be a
                // downgrade.
                key.verify(body, Some(signature))?;
                Ok(Accepted::FirstUse(key))
            }
            _ => Ok(Accepted::Unverified),
        }
    }

    /// Pins `key` on first use; a configured or already pinned key stays.
    pub fn pin(&mut self, key: PublicKey) {
        if *self == Trust::Unpinned {
            *self = Trust::Pinned(key);
        }
    }

    /// Adopts the key a backup was signed under (`None`: the backup records
    /// none). With a configured or pinned key, the backup's must be the same.
    pub fn adopt_backup(&mut self, backup_key: Option<&PublicKey>) -> Result<(), PinMismatch> {
        match (self.key(), backup_key) {
            (Some(trusted), Some(pinned)) if trusted != pinned => Err(PinMismatch {
                pinned: pinned.fingerprint(),
                trusted: trusted.fingerprint(),
            }),
            (None, Some(pinned)) => {
                *self = Trust::Pinned(pinned.clone());
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::signature::header_value;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    struct Plane {
        pair: Ed25519KeyPair,
    }

    impl Plane {
        fn new() -> Plane {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Plane {
                pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
            }
        }
        fn key(&self) -> PublicKey {
            PublicKey::from_bytes(self.pair.public_key().as_ref().try_into().unwrap())
        }
        fn sign(&self, body: &[u8]) -> String {
            header_value(self.pair.sign(body).as_ref())
        }
    }

    const BODY: &[u8] = br#"{"revision":1}"#;

    #[test]
    fn the_first_signed_snapshot_pins_its_key_and_then_only_that_key_counts() {
        let (first, second) = (Plane::new(), Plane::new());
        let mut trust = Trust::new(None);
        let accepted = trust
            .check(
                BODY,
                Some(&first.sign(BODY)),
                Some(&first.key().to_base64()),
            )
            .unwrap();
        assert_eq!(accepted, Accepted::FirstUse(first.key()));
        trust.pin(first.key());
        assert_eq!(trust, Trust::Pinned(first.key()));
        // The same plane again.
        assert_eq!(
            trust.check(
                BODY,
                Some(&first.sign(BODY)),
                Some(&first.key().to_base64())
            ),
            Ok(Accepted::Verified(first.key()))
        );
        // Another plane, consistent with its own key, is refused naming the pin.
        let err = trust
            .check(
                BODY,
                Some(&second.sign(BODY)),
                Some(&second.key().to_base64()),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains(&first.key().fingerprint()),
            "{err}"
        );
        // And so is an unsigned snapshot once pinned: no downgrade.
        assert_eq!(trust.check(BODY, None, None), Err(SignatureError::Missing));
        // Pinning again does not move the pin.
        trust.pin(second.key());
        assert_eq!(trust, Trust::Pinned(first.key()));
    }

    #[test]
    fn unsigned_snapshots_before_a_pin_are_unverified_and_pin_nothing() {
        let trust = Trust::new(None);
        assert_eq!(trust.check(BODY, None, None), Ok(Accepted::Unverified));
        // A signature without the key beside it cannot be checked.
        let plane = Plane::new();
        assert_eq!(
            trust.check(BODY, Some(&plane.sign(BODY)), None),
            Ok(Accepted::Unverified)
        );
    }

    #[test]
    fn a_key_that_does_not_sign_its_body_is_refused_and_not_pinned() {
        let (first, second) = (Plane::new(), Plane::new());
        let trust = Trust::new(None);
        assert!(matches!(
            trust.check(
                BODY,
                Some(&first.sign(BODY)),
                Some(&second.key().to_base64())
            ),
            Err(SignatureError::Invalid { .. })
        ));
        assert_eq!(
            trust.check(BODY, Some(&first.sign(BODY)), Some("AAAA")),
            Err(SignatureError::BadKey)
        );
        let mut tampered = BODY.to_vec();
        tampered[2] ^= 1;
        assert!(trust
            .check(
                &tampered,
                Some(&first.sign(BODY)),
                Some(&first.key().to_base64())
            )
            .is_err());
    }

    #[test]
    fn a_configured_key_ignores_the_key_beside_the_signature() {
        let (configured, other) = (Plane::new(), Plane::new());
        let mut trust = Trust::new(Some(configured.key()));
        assert!(trust
            .check(
                BODY,
                Some(&other.sign(BODY)),
                Some(&other.key().to_base64())
            )
            .is_err());
        trust.pin(other.key());
        assert_eq!(trust, Trust::Configured(configured.key()));
    }

    #[test]
    fn a_backup_pin_is_adopted_or_must_match() {
        let (first, second) = (Plane::new(), Plane::new());
        let mut trust = Trust::new(None);
        assert_eq!(trust.adopt_backup(None), Ok(()));
        assert_eq!(trust, Trust::Unpinned);
        assert_eq!(trust.adopt_backup(Some(&first.key())), Ok(()));
        assert_eq!(trust, Trust::Pinned(first.key()));
        let err = trust.adopt_backup(Some(&second.key())).unwrap_err();
        assert_eq!(err.pinned, second.key().fingerprint());
        assert_eq!(err.trusted, first.key().fingerprint());
        let mut configured = Trust::new(Some(first.key()));
        assert_eq!(configured.adopt_backup(Some(&first.key())), Ok(()));
        let err = configured.adopt_backup(Some(&second.key())).unwrap_err();
        assert!(err.to_string().contains("remove the backup"), "{err}");
    }
}
