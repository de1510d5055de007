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
//!
//! A plane rotating its key signs with both keys during an overlap, listing its
//! new (current) key first. A gateway with a pin that sees a snapshot signed by
//! the pinned key and by the listed current key moves its pin to the current
//! key: the old key endorses the new one.

use super::signature::{parse_keys, PublicKey, SignatureError};

/// The management key a gateway checks snapshots against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Given by the operator (`--management-public-key`, one or more; any
    /// of them may sign).
    Configured(Vec<PublicKey>),
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
    /// Signed by the pinned key `from` and by the plane's current key `to`:
    /// the caller moves the pin ([`Trust::rotate`]).
    Rotated {
        /// The key pinned until now.
        from: PublicKey,
        /// The plane's new key, endorsed by `from`.
        to: PublicKey,
    },
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
    /// The trust a gateway starts with: its configured keys, or none yet.
    pub fn new(configured: Vec<PublicKey>) -> Trust {
        if configured.is_empty() {
            Trust::Unpinned
        } else {
            Trust::Configured(configured)
        }
    }

    /// The keys snapshots must be signed with (any of them); none when
    /// nothing is trusted yet.
    pub fn keys(&self) -> &[PublicKey] {
        match self {
            Trust::Configured(keys) => keys,
            Trust::Pinned(key) => std::slice::from_ref(key),
            Trust::Unpinned => &[],
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
        // The plane's current key: the first listed.
        let current = || {
            signing_key
                .map(parse_keys)
                .transpose()
                .map(|keys| keys.and_then(|k| k.into_iter().next()))
        };
        match self {
            Trust::Configured(keys) => {
                let mut refusal = SignatureError::Missing;
                for key in keys {
                    match key.verify(body, signature) {
                        Ok(()) => return Ok(Accepted::Verified(key.clone())),
                        Err(error @ SignatureError::Invalid { .. }) => refusal = error,
                        Err(error) => return Err(error),
                    }
                }
                Err(refusal)
            }
            Trust::Pinned(pinned) => {
                pinned.verify(body, signature)?;
                // A bad key list is no reason to refuse what the pin verified.
                match current() {
                    Ok(Some(to)) if to != *pinned && to.verify(body, signature).is_ok() => {
                        Ok(Accepted::Rotated {
                            from: pinned.clone(),
                            to,
                        })
                    }
                    _ => Ok(Accepted::Verified(pinned.clone())),
                }
            }
            Trust::Unpinned => match (signature, current()?) {
                (Some(_), Some(key)) => {
                    // A key that does not sign the body it came with is worth
                    // nothing, and a snapshot that fails it is not served:
                    // whoever answers claims to sign, so an unsigned fallback
                    // would be a downgrade.
                    key.verify(body, signature)?;
                    Ok(Accepted::FirstUse(key))
                }
                _ => Ok(Accepted::Unverified),
            },
        }
    }

    /// Pins `key` on first use; configured keys or a pin already made stay.
    pub fn pin(&mut self, key: PublicKey) {
        if *self == Trust::Unpinned {
            *self = Trust::Pinned(key);
        }
    }

    /// Moves a pin to `key` (see [`Accepted::Rotated`]); configured keys stay
    /// (the operator changes them).
    pub fn rotate(&mut self, key: PublicKey) {
        if let Trust::Pinned(pinned) = self {
            *pinned = key;
        }
    }

    /// Adopts the key a backup was signed under (`None`: the backup records
    /// none). With keys already trusted, the backup's must be one of them.
    pub fn adopt_backup(&mut self, backup_key: Option<&PublicKey>) -> Result<(), PinMismatch> {
        match (self.keys(), backup_key) {
            (trusted, Some(pinned)) if !trusted.is_empty() && !trusted.contains(pinned) => {
                let trusted: Vec<String> = trusted.iter().map(PublicKey::fingerprint).collect();
                Err(PinMismatch {
                    pinned: pinned.fingerprint(),
                    trusted: trusted.join(", "),
                })
            }
            ([], Some(pinned)) => {
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
        let mut trust = Trust::new(vec![]);
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
        let trust = Trust::new(vec![]);
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
        let trust = Trust::new(vec![]);
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
        let mut trust = Trust::new(vec![configured.key()]);
        assert!(trust
            .check(
                BODY,
                Some(&other.sign(BODY)),
                Some(&other.key().to_base64())
            )
            .is_err());
        trust.pin(other.key());
        assert_eq!(trust, Trust::Configured(vec![configured.key()]));
    }

    #[test]
    fn a_backup_pin_is_adopted_or_must_match() {
        let (first, second) = (Plane::new(), Plane::new());
        let mut trust = Trust::new(vec![]);
        assert_eq!(trust.adopt_backup(None), Ok(()));
        assert_eq!(trust, Trust::Unpinned);
        assert_eq!(trust.adopt_backup(Some(&first.key())), Ok(()));
        assert_eq!(trust, Trust::Pinned(first.key()));
        let err = trust.adopt_backup(Some(&second.key())).unwrap_err();
        assert_eq!(err.pinned, second.key().fingerprint());
        assert_eq!(err.trusted, first.key().fingerprint());
        let mut configured = Trust::new(vec![first.key()]);
        assert_eq!(configured.adopt_backup(Some(&first.key())), Ok(()));
        let err = configured.adopt_backup(Some(&second.key())).unwrap_err();
        assert!(err.to_string().contains("remove the backup"), "{err}");
    }

    #[test]
    fn a_pin_moves_to_the_new_key_the_old_one_endorses() {
        let (old, new, stranger) = (Plane::new(), Plane::new(), Plane::new());
        let both =
            |body: &[u8]| crate::sync::signature::join_values(&[new.sign(body), old.sign(body)]);
        let keys =
            crate::sync::signature::join_values(&[new.key().to_base64(), old.key().to_base64()]);
        let mut trust = Trust::Pinned(old.key());
        assert_eq!(
            trust.check(BODY, Some(&both(BODY)), Some(&keys)),
            Ok(Accepted::Rotated {
                from: old.key(),
                to: new.key()
            })
        );
        trust.rotate(new.key());
        assert_eq!(trust, Trust::Pinned(new.key()));
        // Still in the overlap: verified, and the pin does not move back.
        assert_eq!(
            trust.check(BODY, Some(&both(BODY)), Some(&keys)),
            Ok(Accepted::Verified(new.key()))
        );
        // A stranger's key listed first, without the pinned key's signature:
        // refused; with a signature of the pinned key but not its own: no move.
        let mut pinned = Trust::Pinned(old.key());
        let stranger_keys = stranger.key().to_base64();
        assert!(pinned
            .check(BODY, Some(&stranger.sign(BODY)), Some(&stranger_keys))
            .is_err());
        assert_eq!(
            pinned.check(BODY, Some(&old.sign(BODY)), Some(&stranger_keys)),
            Ok(Accepted::Verified(old.key()))
        );
        // Configured keys never move; any of them verifies.
        let configured = Trust::new(vec![new.key(), old.key()]);
        assert_eq!(
            configured.check(BODY, Some(&old.sign(BODY)), None),
            Ok(Accepted::Verified(old.key()))
        );
        pinned.rotate(stranger.key());
        assert_eq!(pinned, Trust::Pinned(stranger.key()));
        let mut configured = configured;
        configured.rotate(stranger.key());
        assert_eq!(configured, Trust::new(vec![new.key(), old.key()]));
    }
}
