//! `System.Security.Cryptography` hashes and HMACs on `ring`, AES-CBC (APIM's
//! `byte[].Encrypt`/`Decrypt`, `Aes`) on RustCrypto's `aes` and `cbc`, and the
//! byte formatting helpers that go with them (`BitConverter`, hex).
//!
//! `ring` has no MD5, so `MD5` and `HMACMD5` stay unsupported and the
//! compiler names them.

use aes::cipher::{block_padding, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use bytes::Bytes;
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

/// `System.Security.Cryptography.CipherMode.CBC` (.NET's value and default).
pub const MODE_CBC: i64 = 1;
/// `PaddingMode.None`.
pub const PADDING_NONE: i64 = 1;
/// `PaddingMode.PKCS7` (.NET's default).
pub const PADDING_PKCS7: i64 = 2;

/// `CipherMode` members and their .NET values.
pub const CIPHER_MODES: &[(&str, i64)] =
    &[("CBC", 1), ("ECB", 2), ("OFB", 3), ("CFB", 4), ("CTS", 5)];

/// `PaddingMode` members and their .NET values.
pub const PADDING_MODES: &[(&str, i64)] = &[
    ("None", 1),
    ("PKCS7", 2),
    ("Zeros", 3),
    ("ANSIX923", 4),
    ("ISO10126", 5),
];

/// An `Aes` object (`Aes.Create()`, `new AesManaged()`): its key, IV, mode
/// and padding. A key or IV left unset is an error when used: .NET would
/// generate a random one and the core has no random source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AesParams {
    /// `Key` (16, 24 or 32 bytes), if set.
    pub key: Option<Bytes>,
    /// `IV` (16 bytes), if set.
    pub iv: Option<Bytes>,
    /// `Mode` (a `CipherMode` value; 0 means the default, CBC).
    pub mode: i64,
    /// `Padding` (a `PaddingMode` value; 0 means the default, PKCS7).
    pub padding: i64,
}

/// .NET's message for a key of the wrong size.
pub const BAD_KEY: &str = "Specified key is not a valid size for this algorithm.";
/// .NET's message for an IV of the wrong size.
pub const BAD_IV: &str =
    "Specified initialization vector (IV) does not match the block size for this algorithm.";

/// Whether `name` (as given to APIM's `Encrypt(alg, key, iv)`, .NET's
/// `SymmetricAlgorithm.Create(name)`) names AES. Names are case-insensitive;
/// `Rijndael` with its default 128-bit block is AES.
pub fn is_aes_name(name: &str) -> bool {
    let n = name.trim();
    let n = n
        .strip_prefix("System.Security.Cryptography.")
        .unwrap_or(n)
        .to_ascii_lowercase();
    matches!(
        n.as_str(),
        "aes"
            | "aesmanaged"
            | "aescryptoserviceprovider"
            | "aescng"
            | "rijndael"
            | "rijndaelmanaged"
    )
}

/// The error for a symmetric algorithm name that is not AES.
pub fn unsupported_alg(name: &str) -> String {
    format!("symmetric algorithm '{name}' is not supported (only AES: \"Aes\", in CBC mode)")
}

/// Checks an AES key length (.NET's message when wrong).
pub fn check_key(key: &[u8]) -> Result<(), String> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        _ => Err(BAD_KEY.into()),
    }
}

/// Checks an AES IV length (.NET's message when wrong).
pub fn check_iv(iv: &[u8]) -> Result<(), String> {
    if iv.len() == 16 {
        Ok(())
    } else {
        Err(BAD_IV.into())
    }
}

fn mode_name(mode: i64) -> String {
    CIPHER_MODES
        .iter()
        .find(|(_, v)| *v == mode)
        .map(|(n, _)| format!("CipherMode.{n}"))
        .unwrap_or_else(|| format!("CipherMode {mode}"))
}

fn padding_name(padding: i64) -> String {
    PADDING_MODES
        .iter()
        .find(|(_, v)| *v == padding)
        .map(|(n, _)| format!("PaddingMode.{n}"))
        .unwrap_or_else(|| format!("PaddingMode {padding}"))
}

/// AES-CBC encryption or decryption with `params` (key, IV, mode, padding):
/// `Encrypt`/`Decrypt` of APIM. Only CBC with PKCS7 or no padding; anything
/// else, a key or IV of the wrong size, a partial block or bad padding is an
/// error message (never a panic).
pub fn aes_cbc(params: &AesParams, data: &[u8], encrypt: bool) -> Result<Vec<u8>, String> {
    let no_random = |what: &str| {
        format!(
            "Aes.{what} was not set (.NET would generate a random one; the gateway has no random source: set Key and IV, or pass them to Encrypt/Decrypt)"
        )
    };
    let key = params.key.as_deref().ok_or_else(|| no_random("Key"))?;
    let iv = params.iv.as_deref().ok_or_else(|| no_random("IV"))?;
    check_key(key)?;
    check_iv(iv)?;
    let mode = if params.mode == 0 {
        MODE_CBC
    } else {
        params.mode
    };
    if mode != MODE_CBC {
        return Err(format!(
            "{} is not supported (only CipherMode.CBC)",
            mode_name(mode)
        ));
    }
    let padding = if params.padding == 0 {
        PADDING_PKCS7
    } else {
        params.padding
    };
    let pkcs7 = match padding {
        PADDING_PKCS7 => true,
        PADDING_NONE => false,
        other => {
            return Err(format!(
                "{} is not supported (only PaddingMode.PKCS7 and PaddingMode.None)",
                padding_name(other)
            ))
        }
    };
    if (!encrypt || !pkcs7) && !data.len().is_multiple_of(16) {
        return Err("The input data is not a complete block.".into());
    }
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                let enc = cbc::Encryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| BAD_KEY.to_string())?;
                Ok(if pkcs7 {
                    enc.encrypt_padded_vec::<block_padding::Pkcs7>(data)
                } else {
                    enc.encrypt_padded_vec::<block_padding::NoPadding>(data)
                })
            } else {
                let dec = cbc::Decryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| BAD_KEY.to_string())?;
                let r = if pkcs7 {
                    dec.decrypt_padded_vec::<block_padding::Pkcs7>(data)
                } else {
                    dec.decrypt_padded_vec::<block_padding::NoPadding>(data)
                };
                r.map_err(|_| "Padding is invalid and cannot be removed.".to_string())
            }
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        from_hex(&s.replace([' ', '\n'], "")).unwrap_or_default()
    }

    fn params(key: &str, iv: &str, padding: i64) -> AesParams {
        AesParams {
            key: Some(Bytes::from(hex(key))),
            iv: Some(Bytes::from(hex(iv))),
            mode: 0,
            padding,
        }
    }

    /// NIST SP 800-38A, F.2.1-F.2.6: CBC-AES128/192/256, four blocks, no padding.
    #[test]
    fn aes_cbc_nist_sp800_38a() {
        let iv = "000102030405060708090a0b0c0d0e0f";
        let pt = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 \
                  30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
        let cases = [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2 \
                 73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
            ),
            (
                "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
                "4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a \
                 571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd",
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d \
                 39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ];
        for (key, ct) in cases {
            let p = params(key, iv, PADDING_NONE);
            assert_eq!(aes_cbc(&p, &hex(pt), true), Ok(hex(ct)), "key {key}");
            assert_eq!(aes_cbc(&p, &hex(ct), false), Ok(hex(pt)), "key {key}");
        }
    }

    #[test]
    fn aes_cbc_pkcs7() {
        let key = "2b7e151628aed2a6abf7158809cf4f3c";
        let iv = "000102030405060708090a0b0c0d0e0f";
        let p = params(key, iv, 0);
        // A whole block of plaintext gets a whole block of padding (16 x 0x10):
        // the first block is NIST's, the second encrypts 0x10s chained on it.
        let one = hex("6bc1bee22e409f96e93d7e117393172a");
        let ct = aes_cbc(&p, &one, true).unwrap_or_default();
        assert_eq!(ct.len(), 32);
        assert_eq!(ct[..16], hex("7649abac8119b246cee98e9b12e9197d")[..]);
        let raw = aes_cbc(&params(key, iv, PADDING_NONE), &ct, false).unwrap_or_default();
        assert_eq!(raw[16..], [0x10; 16]);
        assert_eq!(aes_cbc(&p, &ct, false), Ok(one));
        for n in [0usize, 1, 15, 16, 17, 31, 100] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let ct = aes_cbc(&p, &data, true).unwrap_or_default();
            assert_eq!(ct.len(), (n / 16 + 1) * 16);
            assert_eq!(aes_cbc(&p, &ct, false), Ok(data));
        }
    }

    #[test]
    fn aes_cbc_errors() {
        let iv = "000102030405060708090a0b0c0d0e0f";
        let p = params("2b7e151628aed2a6abf7158809cf4f3c", iv, 0);
        assert_eq!(
            aes_cbc(&p, &[0; 15], false),
            Err("The input data is not a complete block.".into())
        );
        // Decrypting with the wrong key gives bad padding (almost surely).
        let ct = aes_cbc(&p, b"hello", true).unwrap_or_default();
        let other = params("000102030405060708090a0b0c0d0e0f", iv, 0);
        assert_eq!(
            aes_cbc(&other, &ct, false),
            Err("Padding is invalid and cannot be removed.".into())
        );
        assert_eq!(
            aes_cbc(&params("00", iv, 0), b"x", true),
            Err(BAD_KEY.into())
        );
        assert_eq!(
            aes_cbc(
                &params("2b7e151628aed2a6abf7158809cf4f3c", "00", 0),
                b"x",
                true
            ),
            Err(BAD_IV.into())
        );
        let mut ecb = p.clone();
        ecb.mode = 2;
        assert!(aes_cbc(&ecb, b"x", true).is_err_and(|e| e.contains("CipherMode.ECB")));
        let mut zeros = p.clone();
        zeros.padding = 3;
        assert!(aes_cbc(&zeros, b"x", true).is_err_and(|e| e.contains("PaddingMode.Zeros")));
        assert!(aes_cbc(&AesParams::default(), b"x", true).is_err_and(|e| e.contains("Key")));
        assert!(is_aes_name("AES") && is_aes_name("System.Security.Cryptography.AesManaged"));
        assert!(!is_aes_name("TripleDES"));
    }

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
