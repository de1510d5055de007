//! Random keys and tokens, and admin token digests compared in constant time.

use ring::rand::{SecureRandom, SystemRandom};

use super::StoreError;

thread_local! {
    /// A seeded stream replacing the OS random source on this thread: the seed and
    /// how many blocks were drawn.
    static SEEDED: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

/// Makes keys and tokens made on this thread come from a deterministic stream
/// seeded with `seed` (`None`: the OS random source again). For a deterministic
/// simulation, where the whole management plane runs on one thread; never in
/// production.
pub fn seed_random_on_this_thread(seed: Option<u64>) {
    SEEDED.with(|s| s.set(seed.map(|seed| (seed, 0))));
}

/// `bytes` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    random_bytes(bytes).map(|buf| hex(&buf))
}

/// `bytes` random bytes from the operating system (or this thread's seeded stream).
pub(crate) fn random_bytes(bytes: usize) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; bytes];
    if let Some((seed, drawn)) = SEEDED.with(std::cell::Cell::get) {
        let mut n = drawn;
        for chunk in buf.chunks_mut(32) {
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&seed.to_le_bytes());
            input[8..].copy_from_slice(&n.to_le_bytes());
            let d = ring::digest::digest(&ring::digest::SHA256, &input);
            chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
            n += 1;
        }
        SEEDED.with(|s| s.set(Some((seed, n))));
        return Ok(buf);
    }
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Io(std::io::Error::other("the system random source failed")))?;
    Ok(buf)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// SHA-256 of a token: what is stored and compared instead of the token.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `token`'s digest is one of `digests`. Every digest is compared, each without
/// an early exit; and since digests, not tokens, are compared, timing could only tell
/// how a guess's SHA-256 differs from a real one's, which says nothing about the token.
pub(crate) fn matches_any(token: &str, digests: &[[u8; 32]]) -> bool {
    let candidate = digest(token);
    let mut found = false;
    for d in digests {
        found |= equal_constant_time(&candidate, d);
    }
    found
}

/// Byte-wise comparison that looks at every byte whatever differs.
fn equal_constant_time(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_random() {
        assert_eq!(hex(&[0, 0xab, 0x0f]), "00ab0f");
        let a = random_hex(32).unwrap();
        let b = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn digests_match() {
        let ds = [digest("one"), digest("two")];
        assert!(matches_any("two", &ds));
        assert!(!matches_any("three", &ds));
        assert!(!matches_any("one", &[]));
    }
}
