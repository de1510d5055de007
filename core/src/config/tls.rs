//! The TLS part of a snapshot: certificates with their keys, trusted CAs with
//! their revocation lists, the custom hostnames the HTTPS listener serves, and
//! how a backend's TLS is checked. Only the model and its checks live here;
//! rustls objects are built from it in the driver.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The cipher suites the gateway offers (rustls with the ring provider), by
/// IANA name: the names a hostname's or a backend's `cipherSuites` may list.
pub const CIPHER_SUITES: [&str; 9] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// rustls's (and OpenSSL-minded tools') names for the TLS 1.3 suites,
/// accepted for IANA's.
const TLS13_ALIASES: [(&str, &str); 3] = [
    ("TLS13_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    ("TLS13_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    (
        "TLS13_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
];

/// The IANA name of the suite `name` (IANA's name or rustls's, any case), if
/// the gateway has it.
pub fn cipher_suite(name: &str) -> Option<&'static str> {
    let name = name.trim();
    CIPHER_SUITES
        .iter()
        .copied()
        .find(|iana| iana.eq_ignore_ascii_case(name))
        .or_else(|| {
            TLS13_ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                .map(|(_, iana)| *iana)
        })
}

/// A certificate chain with its private key: served for custom hostnames,
/// presented to backends (`authentication-certificate`, a backend's
/// `tls.clientCertificateId`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// The chain as PEM `CERTIFICATE` blocks, leaf first.
    pub certificate_pem: String,
    /// The private key as PEM (PKCS#8, PKCS#1 or SEC1); never printed.
    pub private_key_pem: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Snapshots end up in debug logs; a private key must not travel with them.
        f.debug_struct("Certificate")
            .field("id", &self.id)
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

/// A trusted certificate authority (a root or an intermediate) for client
/// certificates (`validate-client-certificate`) and for backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaCertificate {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// The CA's certificate as one PEM `CERTIFICATE` block.
    pub certificate_pem: String,
    /// Certificate revocation lists this CA issued, as PEM `X509 CRL` blocks
    /// (uploaded with the CA: the gateway never fetches one over the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_pem: Option<String>,
}

/// The lowest TLS version a hostname or a backend accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// A custom hostname of a gateway's HTTPS listener: which certificate a
/// client asking for it by SNI gets, and how its handshakes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hostname {
    /// The host name (`api.example.com`) or a wildcard (`*.example.com`), lowercase.
    pub hostname: String,
    /// Id of the [`Certificate`] served for it.
    pub certificate_id: String,
    /// Ask the client for a certificate during the first handshake (there is
    /// no renegotiation); a client may still send none.
    #[serde(default)]
    pub negotiate_client_certificate: bool,
    /// Served to clients that send no SNI or a name no hostname matches.
    #[serde(default)]
    pub default_ssl_binding: bool,
    /// The lowest TLS version accepted.
    #[serde(default)]
    pub min_tls_version: TlsVersion,
    /// IANA names of the cipher suites allowed (e.g.
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`); empty means all the
    /// gateway's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Reserved: HTTP/2 on this hostname (ALPN offers only `http/1.1` today).
    #[serde(default)]
    pub http2_enabled: bool,
}

/// How the gateway checks a backend's TLS and what it presents to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTls {
    /// Check that the backend's chain leads to a trusted CA (APIM's
    /// `validateCertificateChain`).
    #[serde(default = "default_true")]
    pub validate_certificate_chain: bool,
    /// Check that the backend's certificate names the host (APIM's
    /// `validateCertificateName`).
    #[serde(default = "default_true")]
    pub validate_certificate_name: bool,
    /// Ids of the [`CaCertificate`]s trusted for this backend; empty means the
    /// public roots (and the gateway's `--backend-ca`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_ids: Vec<String>,
    /// The SNI name sent and checked instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The lowest TLS version accepted.
    #[serde(default)]
    pub min_tls_version: TlsVersion,
    /// IANA names of the cipher suites offered; empty means the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Id of the [`Certificate`] presented when the backend asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_id: Option<String>,
}

impl Default for BackendTls {
    fn default() -> Self {
        BackendTls {
            validate_certificate_chain: true,
            validate_certificate_name: true,
            ca_certificate_ids: Vec::new(),
            server_name: None,
            min_tls_version: TlsVersion::Tls12,
            cipher_suites: Vec::new(),
            client_certificate_id: None,
        }
    }
}

fn default_true() -> bool {
    true
}
