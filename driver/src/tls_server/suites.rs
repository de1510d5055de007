//! Cipher suites by their IANA names, as configurations list them
//! (`cipherSuites` of a custom hostname): the ones ring's provider has, and
//! the provider narrowed to a list.

use futures_rustls::rustls::crypto::CryptoProvider;
use futures_rustls::rustls::CipherSuite;

/// Every suite of ring's default provider under its IANA name (TLS 1.3's
/// are `TLS_AES_...`, where rustls says `TLS13_AES_...`).
const IANA: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The suite IANA calls `name` (any case), if ring's provider has it.
pub fn by_iana_name(name: &str) -> Option<CipherSuite> {
    let iana = portcullis_core::config::cipher_suite(name)?;
    IANA.iter()
        .find(|(known, _)| *known == iana)
        .map(|(_, suite)| *suite)
}

/// `provider` with only the suites `names` lists (in the provider's order of
/// preference); also the names it does not know, which are left out.
pub fn restrict<'n>(
    provider: &CryptoProvider,
    names: &'n [String],
) -> (CryptoProvider, Vec<&'n str>) {
    let mut unknown = Vec::new();
    let wanted: Vec<CipherSuite> = names
        .iter()
        .filter_map(|name| {
            let suite = by_iana_name(name);
            if suite.is_none() {
                unknown.push(name.as_str());
            }
            suite
        })
        .collect();
    let mut narrowed = provider.clone();
    narrowed
        .cipher_suites
        .retain(|s| wanted.contains(&s.suite()));
    (narrowed, unknown)
}
