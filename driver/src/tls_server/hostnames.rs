//! The configuration's custom hostnames as the HTTPS listener serves them:
//! one rustls configuration per hostname (its certificate, lowest version,
//! cipher suites, and whether it asks for a client certificate), chosen by
//! SNI before the handshake goes on. Built once per change of the hostnames,
//! their certificates or the CAs they hint; a hostname that cannot be served
//! is logged and left out, never taking the others down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls::crypto::CryptoProvider;
use futures_rustls::rustls::server::danger::ClientCertVerifier;
use futures_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use futures_rustls::rustls::sign::CertifiedKey;
use futures_rustls::rustls::version::{TLS12, TLS13};
use futures_rustls::rustls::{ServerConfig, SupportedCipherSuite};
use portcullis_core::config::{Certificate, Hostname, Snapshot, TlsVersion};

use super::client_auth::AnyClientCert;
use super::names::NameTable;
use super::{suites, Common, ServedCert};

/// The custom hostnames' configurations, by SNI, with what they were built
/// from.
#[derive(Debug, Default)]
pub struct HostnameConfigs {
    table: NameTable<Arc<ServerConfig>>,
    /// The snapshot's hostnames, as built.
    hostnames: Vec<Hostname>,
    /// The certificate each hostname named (`None`: the snapshot had none by that id).
    certificates: Vec<Option<Certificate>>,
    /// The CA certificates hinted (only when a hostname negotiates).
    ca_pems: Vec<String>,
}

impl HostnameConfigs {
    /// Whether no hostname is served (the file certificates serve every handshake).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The configuration for SNI `sni`: exact hostname, wildcard, then the one
    /// with `defaultSslBinding`; `None` leaves the handshake to the files.
    pub fn choose(&self, sni: Option<&str>) -> Option<&Arc<ServerConfig>> {
        self.table.choose(sni)
    }

    /// Whether `snapshot` has the hostnames, certificates and CA hints these
    /// were built from (then nothing needs building for it).
    pub fn same_source(&self, snapshot: &Snapshot) -> bool {
        self.hostnames == snapshot.hostnames
            && self
                .hostnames
                .iter()
                .zip(&self.certificates)
                .all(|(h, c)| c.as_ref() == certificate(snapshot, &h.certificate_id))
            && (!negotiates(&snapshot.hostnames)
                || self
                    .ca_pems
                    .iter()
                    .eq(snapshot.ca_certificates.iter().map(|c| &c.certificate_pem)))
    }

    /// Builds the configurations of `snapshot`'s hostnames; the ones that
    /// cannot be served are logged and left out.
    pub fn build(snapshot: &Snapshot, common: &Common) -> Self {
        let negotiating = negotiates(&snapshot.hostnames);
        let verifier: Option<Arc<dyn ClientCertVerifier>> = negotiating
            .then(|| AnyClientCert::new(&snapshot.ca_certificates, &common.provider) as _);
        let mut built = HostnameConfigs {
            hostnames: snapshot.hostnames.clone(),
            ca_pems: if negotiating {
                snapshot
                    .ca_certificates
                    .iter()
                    .map(|c| c.certificate_pem.clone())
                    .collect()
            } else {
                Vec::new()
            },
            ..HostnameConfigs::default()
        };
        // Each certificate is parsed once however many hostnames name it, and
        // one that fails is logged once.
        let mut keys: HashMap<&str, Option<Arc<CertifiedKey>>> = HashMap::new();
        for hostname in &snapshot.hostnames {
            let cert = certificate(snapshot, &hostname.certificate_id);
            built.certificates.push(cert.cloned());
            let Some(cert) = cert else {
                tracing::warn!(
                    hostname = %hostname.hostname,
                    certificate = %hostname.certificate_id,
                    "custom hostname names a certificate the configuration does not have; not served"
                );
                continue;
            };
            let key = keys
                .entry(cert.id.as_str())
                .or_insert_with(|| match certified_key(cert, &common.provider) {
                    Ok(key) => Some(key),
                    Err(reason) => {
                        tracing::warn!(certificate = %cert.id, %reason, "certificate refused; the custom hostnames using it are not served");
                        None
                    }
                })
                .clone();
            let Some(key) = key else { continue };
            match hostname_config(hostname, key, verifier.clone(), common) {
                Ok(config) => {
                    let config = Arc::new(config);
                    if hostname.default_ssl_binding {
                        built.table.set_default(config.clone());
                    }
                    built
                        .table
                        .insert(&hostname.hostname.to_ascii_lowercase(), config);
                }
                Err(reason) => tracing::warn!(
                    hostname = %hostname.hostname,
                    %reason,
                    "custom hostname not served"
                ),
            }
        }
        built
    }
}

/// Whether any hostname asks for client certificates.
fn negotiates(hostnames: &[Hostname]) -> bool {
    hostnames.iter().any(|h| h.negotiate_client_certificate)
}

/// The snapshot's certificate with id `id`.
fn certificate<'s>(snapshot: &'s Snapshot, id: &str) -> Option<&'s Certificate> {
    snapshot.certificates.iter().find(|c| c.id == id)
}

/// The signing key and chain of `cert`.
fn certified_key(
    cert: &Certificate,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let name = format!("certificate {}", cert.id);
    ServedCert::from_pem(
        (Path::new(&name), cert.certificate_pem.as_bytes()),
        (Path::new(&name), cert.private_key_pem.as_bytes()),
        provider,
    )
    .map(|served| served.key)
    .map_err(|e| e.to_string())
}

/// The rustls configuration of one hostname.
fn hostname_config(
    hostname: &Hostname,
    key: Arc<CertifiedKey>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    common: &Common,
) -> Result<ServerConfig, String> {
    let provider = if hostname.cipher_suites.is_empty() {
        common.provider.clone()
    } else {
        let (narrowed, unknown) = suites::restrict(&common.provider, &hostname.cipher_suites);
        if !unknown.is_empty() {
            tracing::warn!(hostname = %hostname.hostname, ?unknown, "cipher suites not supported; left out");
        }
        Arc::new(narrowed)
    };
    let has = |tls13: bool| {
        provider
            .cipher_suites
            .iter()
            .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
    };
    let mut versions = Vec::with_capacity(2);
    if has(true) {
        versions.push(&TLS13);
    }
    if hostname.min_tls_version == TlsVersion::Tls12 && has(false) {
        versions.push(&TLS12);
    }
    if versions.is_empty() {
        return Err("no allowed cipher suite for the TLS versions it accepts".into());
    }
    let verifier = negotiate(hostname, verifier);
    common
        .config(provider, &versions, verifier, Arc::new(Fixed(key)))
        .map_err(|e| e.to_string())
}

/// The verifier of a hostname that negotiates client certificates; `None`
/// for the others, which never send a CertificateRequest.
fn negotiate(
    hostname: &Hostname,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    if hostname.negotiate_client_certificate {
        verifier
    } else {
        None
    }
}

/// A hostname's one certificate, whatever the hello says (SNI chose it already).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
