//! `System.Security.Cryptography` hashes and HMACs on `ring`, and the byte
//! formatting helpers that go with them (`BitConverter`, hex).
//!
//! `ring` has no MD5 (nor AES-CBC), so `MD5`, `HMACMD5` and `Aes` stay
//! unsupported and the compiler names them.

use ring::{digest, hmac};

/// A hash algorithm of `SHA*` / `HMACSHA*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1 (legacy; still used by Azure and OAuth 1 signatures).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The .NET name of the plain hash class (`SHA256`).
    pub fn hash_name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA1",
            HashAlg::Sha256 => "SHA256",
            HashAlg::Sha384 => "SHA384",
            HashAlg::Sha512 => "SHA512",
        }
    }

    /// The .NET name of the keyed class (`HMACSHA256`).
    pub fn hmac_name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "HMACSHA1",
            HashAlg::Sha256 => "HMACSHA256",
            HashAlg::Sha384 => "HMACSHA384",
            HashAlg::Sha512 => "HMACSHA512",
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => hmac::HMAC_SHA256,
            HashAlg::Sha384 => hmac::HMAC_SHA384,
            HashAlg::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Maps a .NET class name (namespace dropped) to (algorithm, keyed?).
/// `SHA256Managed`, `SHA256CryptoServiceProvider`, `SHA256Cng` are the same hash.
pub fn class_of(name: &str) -> Option<(HashAlg, bool)> {
    let base = name.rsplit('.').next().unwrap_or(name);
    let (keyed, rest) = match base.strip_prefix("HMAC") {
        Some(r) => (true, r),
        None => (false, base),
    };
    let rest = if keyed {
        rest
    } else {
        rest.strip_suffix("Managed")
            .or_else(|| rest.strip_suffix("CryptoServiceProvider"))
            .or_else(|| rest.strip_suffix("Cng"))
            .unwrap_or(rest)
    };
    let alg = match rest {
        "SHA1" => HashAlg::Sha1,
        "SHA256" => HashAlg::Sha256,
        "SHA384" => HashAlg::Sha384,
        "SHA512" => HashAlg::Sha512,
        _ => return None,
    };
    Some((alg, keyed))
}

/// The hash of `data`.
pub fn hash(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    digest::digest(alg.digest_alg(), data).as_ref().to_vec()
}

/// The HMAC of `data` under `key` (any key length, as .NET accepts).
pub fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = hmac::Key::new(alg.hmac_alg(), key);
    hmac::sign(&k, data).as_ref().to_vec()
}

/// `BitConverter.ToString(bytes)`: `"0A-FF-10"`.
pub fn bit_converter_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_hex(&mut out, *b, true);
    }
    out
}

/// Hex digits of `bytes` (`Convert.ToHexString` is upper case).
pub fn to_hex(bytes: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex(&mut out, *b, upper);
    }
    out
}

fn push_hex(out: &mut String, b: u8, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push(digits[(b >> 4) as usize] as char);
    out.push(digits[(b & 0xF) as usize] as char);
}

/// `Convert.FromHexString`: an even number of hex digits, either case.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_known_answers() {
        assert_eq!(
            to_hex(&hash(HashAlg::Sha256, b"abc"), false),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            to_hex(&hash(HashAlg::Sha1, b"abc"), false),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            to_hex(&hash(HashAlg::Sha512, b"abc"), false),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(
            to_hex(&hash(HashAlg::Sha384, b"abc"), false),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
    }

    #[test]
    fn hmac_rfc4231_and_rfc2202() {
        // RFC 4231 test case 1.
        let key = [0x0b; 20];
        assert_eq!(
            to_hex(&hmac(HashAlg::Sha256, &key, b"Hi There"), false),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            to_hex(&hmac(HashAlg::Sha512, &key, b"Hi There"), false),
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
             daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
        );
        // RFC 4231 test case 2 (a key shorter than the block).
        assert_eq!(
            to_hex(
                &hmac(HashAlg::Sha256, b"Jefe", b"what do ya want for nothing?"),
                false
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6 (a key longer than the block is hashed first).
        assert_eq!(
            to_hex(
                &hmac(
                    HashAlg::Sha256,
                    &[0xaa; 131],
                    b"Test Using Larger Than Block-Size Key - Hash Key First"
                ),
                false
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // RFC 2202 test case 2.
        assert_eq!(
            to_hex(
                &hmac(HashAlg::Sha1, b"Jefe", b"what do ya want for nothing?"),
                false
            ),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn names_and_hex() {
        assert_eq!(class_of("HMACSHA256"), Some((HashAlg::Sha256, true)));
        assert_eq!(
            class_of("System.Security.Cryptography.SHA256Managed"),
            Some((HashAlg::Sha256, false))
        );
        assert_eq!(class_of("SHA1"), Some((HashAlg::Sha1, false)));
        assert_eq!(class_of("MD5"), None);
        assert_eq!(class_of("HMACMD5"), None);
        assert_eq!(bit_converter_string(&[0x0a, 0xff, 0x10]), "0A-FF-10");
        assert_eq!(bit_converter_string(&[]), "");
        assert_eq!(to_hex(&[0xab, 0x01], true), "AB01");
        assert_eq!(from_hex("ab01FF"), Some(vec![0xab, 0x01, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
