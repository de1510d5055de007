//! Portal passwords: the rules a new one must meet, and argon2id hashes with
//! OWASP's parameters (19 MiB, 2 passes, 1 lane).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// How many hashes or checks run at once: each takes 19 MiB and a core for tens
/// of milliseconds, so a burst of sign-ins waits here instead of exhausting memory.
const CONCURRENT: usize = 4;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT);

/// Runs `work` (a hash or a check) on a blocking thread, at most [`CONCURRENT`] at once.
pub async fn off_thread<T, F>(work: F) -> Result<T, PasswordError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// The shortest password sign-up accepts, in characters.
pub const MIN_LENGTH: usize = 10;

/// The longest password accepted, in bytes: hashing cost grows with length.
pub const MAX_BYTES: usize = 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The random source failed.
    #[error("random salt: {0}")]
    Salt(#[from] crate::store::StoreError),
    /// argon2 refused the input or parameters.
    #[error("argon2: {0}")]
    Hash(String),
}

/// Why a new password is not acceptable, as the form shows it; `None` when it is.
pub fn rule_broken(password: &str) -> Option<String> {
    if password.chars().count() < MIN_LENGTH {
        return Some(format!(
            "Choose a password of at least {MIN_LENGTH} characters."
        ));
    }
    if password.len() > MAX_BYTES {
        return Some(format!("Choose a password of at most {MAX_BYTES} bytes."));
    }
    None
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The argon2id PHC string of `password`, with a fresh 16-byte random salt.
/// CPU-heavy (tens of milliseconds): call it on a blocking thread.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt_hex = crate::store::random_token()?;
    // 16 of the 32 random bytes are plenty for a salt (RFC 9106 recommends 16).
    let salt: Vec<u8> = (0..16)
        .filter_map(|i| u8::from_str_radix(salt_hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect();
    let phc = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(phc.to_string())
}

/// Whether `password` matches `phc` (a PHC string from [`hash`]); a malformed
/// stored hash never matches. CPU-heavy: call it on a blocking thread.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    match hasher() {
        Ok(h) => h.verify_password(password.as_bytes(), phc).is_ok(),
        Err(_) => false,
    }
}

/// Checks `password` against a fixed hash, so that a sign-in with an unknown email
/// takes as long as one with a known email and a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("portcullis-timing-equaliser").ok()) {
        let _ = verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(rule_broken("short").is_some());
        assert!(rule_broken("123456789").is_some());
        assert!(rule_broken("1234567890").is_none());
        // Characters, not bytes: ten accented letters pass.
        assert!(rule_broken("éééééééééé").is_none());
        assert!(rule_broken(&"x".repeat(MAX_BYTES + 1)).is_some());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse battery!", &a));
        assert!(!verify("correct horse battery", "not a hash"));
        verify_nothing("anything");
    }
}
