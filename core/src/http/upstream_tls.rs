//! How the gateway makes TLS to one backend, resolved from a snapshot (a
//! backend entity's `tls`, the certificate `authentication-certificate`
//! chose): plain data the driver builds its rustls configuration from, with a
//! key naming the settings by their content so that the driver's
//! configuration cache and its connection pool never mix two settings.

use std::fmt;
use std::sync::Arc;

use super::ServiceUrl;

/// A certificate with its private key, presented to a backend that asks for one.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's id in the snapshot.
    pub id: String,
    /// SHA-1 of the leaf's DER, uppercase hex; `None` when the PEM holds no
    /// readable certificate (connecting with it then fails).
    pub thumbprint: Option<String>,
    /// The chain as PEM `CERTIFICATE` blocks, leaf first.
    pub certificate_pem: String,
    /// The private key as PEM; never printed.
    pub private_key_pem: String,
    /// Names the content (chain and key), for [`UpstreamTls::key`].
    fingerprint: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configurations end up in debug logs; the key must not travel with them.
        f.debug_struct("ClientIdentity")
            .field("id", &self.id)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// The identity of certificate `id` (chain and key as PEM).
    pub fn new(id: &str, certificate_pem: &str, private_key_pem: &str) -> ClientIdentity {
        let thumbprint = leaf_der(certificate_pem).map(|der| {
            crate::cert::upper_hex(
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref(),
            )
        });
        let fingerprint = digest_hex(&[certificate_pem.as_bytes(), private_key_pem.as_bytes()]);
        ClientIdentity {
            id: id.to_owned(),
            thumbprint,
            certificate_pem: certificate_pem.to_owned(),
            private_key_pem: private_key_pem.to_owned(),
            fingerprint,
        }
    }
}

/// The DER of the first certificate in `pem`, if there is one.
fn leaf_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

/// TLS settings for a backend. The default is what a plain service URL gets:
/// chain and name checked against the gateway's roots, TLS 1.2 and 1.3, the
/// default suites, no client certificate. The fields are read-only (set by
/// [`UpstreamTls::new`]), so the content key always names the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Check that the chain leads to a trusted CA.
    validate_chain: bool,
    /// Check that the certificate names the host (or [`Self::server_name`]).
    validate_name: bool,
    /// The CAs trusted (PEM); `None`: the gateway's roots (public ones and its
    /// `--backend-ca`). `Some` of an empty list trusts nothing.
    trusted_cas: Option<Vec<String>>,
    /// The name sent as SNI and checked, instead of the URL's host.
    server_name: Option<String>,
    /// Refuse TLS 1.2.
    tls13_only: bool,
    /// IANA names of the suites offered; empty: the defaults.
    cipher_suites: Vec<String>,
    /// What is presented when the backend asks for a certificate.
    client_identity: Option<Arc<ClientIdentity>>,
    /// Names these settings by content, see [`Self::key`].
    key: Arc<str>,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls::new(true, true, None, None, false, Vec::new(), None)
    }
}

impl UpstreamTls {
    /// Settings from their parts.
    pub fn new(
        validate_chain: bool,
        validate_name: bool,
        trusted_cas: Option<Vec<String>>,
        server_name: Option<String>,
        tls13_only: bool,
        cipher_suites: Vec<String>,
        client_identity: Option<Arc<ClientIdentity>>,
    ) -> UpstreamTls {
        let mut tls = UpstreamTls {
            validate_chain,
            validate_name,
            trusted_cas,
            server_name,
            tls13_only,
            cipher_suites,
            client_identity,
            key: Arc::from(""),
        };
        tls.key = tls.compute_key();
        tls
    }

    /// The same settings presenting `identity` instead.
    pub fn with_identity(&self, identity: Arc<ClientIdentity>) -> UpstreamTls {
        let mut tls = self.clone();
        tls.client_identity = Some(identity);
        tls.key = tls.compute_key();
        tls
    }

    /// Names the settings by their content: equal settings have equal keys,
    /// in any revision, so a rustls configuration (and its session cache)
    /// built for them lives on across revisions that do not change them.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// Check that the chain leads to a trusted CA.
    pub fn validate_chain(&self) -> bool {
        self.validate_chain
    }

    /// Check that the certificate names the host (or [`Self::server_name`]).
    pub fn validate_name(&self) -> bool {
        self.validate_name
    }

    /// The CAs trusted (PEM); `None`: the gateway's roots (public ones and
    /// its `--backend-ca`). An empty list trusts nothing.
    pub fn trusted_cas(&self) -> Option<&[String]> {
        self.trusted_cas.as_deref()
    }

    /// The name sent as SNI and checked, instead of the URL's host.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Refuse TLS 1.2.
    pub fn tls13_only(&self) -> bool {
        self.tls13_only
    }

    /// IANA names of the suites offered; empty: the defaults.
    pub fn cipher_suites(&self) -> &[String] {
        &self.cipher_suites
    }

    /// What is presented when the backend asks for a certificate.
    pub fn client_identity(&self) -> Option<&Arc<ClientIdentity>> {
        self.client_identity.as_ref()
    }

    fn compute_key(&self) -> Arc<str> {
        let flags = [
            u8::from(self.validate_chain),
            u8::from(self.validate_name),
            u8::from(self.tls13_only),
            u8::from(self.trusted_cas.is_some()),
        ];
        let mut parts: Vec<&[u8]> = vec![&flags];
        // Parts are length-prefixed (see `digest_hex`) and each is followed by
        // a tag naming its kind, so different settings never hash the same bytes.
        for ca in self.trusted_cas.iter().flatten() {
            parts.extend([ca.as_bytes(), b"\0ca"]);
        }
        if let Some(name) = &self.server_name {
            parts.extend([name.as_bytes(), b"\0sni"]);
        }
        for suite in &self.cipher_suites {
            parts.extend([suite.as_bytes(), b"\0suite"]);
        }
        if let Some(id) = &self.client_identity {
            parts.extend([id.fingerprint.as_bytes(), b"\0id"]);
        }
        Arc::from(digest_hex(&parts))
    }

    /// The pool key of a connection to `service` made with these settings:
    /// the URL's own for plain HTTP, which has no TLS to mix up.
    pub fn pool_key(tls: Option<&UpstreamTls>, service: &ServiceUrl) -> Arc<str> {
        match tls {
            Some(tls) if service.scheme == super::Scheme::Https => {
                Arc::from(format!("{}#tls={}", service.pool_key, tls.key))
            }
            _ => service.pool_key.clone(),
        }
    }
}

/// SHA-256 of the parts, the first 16 bytes as lowercase hex.
fn digest_hex(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let digest = ctx.finish();
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
