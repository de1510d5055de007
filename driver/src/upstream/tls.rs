//! rustls client configurations for backends: the default one (public roots
//! and `--backend-ca`), and one per distinct backend TLS setting
//! ([`UpstreamTls`]), built on first use and kept under the setting's content
//! key. A configuration lives as long as its setting does, across revisions
//! that keep it, so its session cache makes later connections resume.

use portcullis_core::config::cipher_suite;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::client::{verify_server_name, WebPkiServerVerifier};
use futures_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use futures_rustls::rustls::server::ParsedCertificate;
use futures_rustls::rustls::version::{TLS12, TLS13};
use futures_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme, SupportedProtocolVersion,
};
use portcullis_core::http::UpstreamTls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Most configurations kept at once: far more distinct settings than a
/// gateway's backends have; past it the cache starts over (the settings in
/// use are built again on their next connection).
const MAX_CONFIGS: usize = 256;

/// The client configurations of a gateway's backend connections.
pub struct TlsConfigs {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    default: Arc<ClientConfig>,
    built: Mutex<HashMap<Arc<str>, Arc<ClientConfig>>>,
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl TlsConfigs {
    /// Configurations trusting `roots` by default.
    pub fn new(roots: RootCertStore) -> Result<TlsConfigs, String> {
        let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
        let roots = Arc::new(roots);
        let default = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(TlsConfigs {
            provider,
            roots,
            default: Arc::new(default),
            built: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration for `tls` (`None`: the default one).
    pub fn config(&self, tls: Option<&UpstreamTls>) -> Result<Arc<ClientConfig>, String> {
        let Some(tls) = tls else {
            return Ok(self.default.clone());
        };
        if let Some(found) = self.lock().get(tls.key()) {
            return Ok(found.clone());
        }
        // Built outside the lock: parsing PEMs is slow next to a lookup. Two
        // connections racing here build twice; the first one's is kept, so
        // they share one session cache.
        let config = Arc::new(self.build(tls)?);
        let mut built = self.lock();
        if built.len() >= MAX_CONFIGS && !built.contains_key(tls.key()) {
            built.clear();
        }
        Ok(built.entry(tls.key().clone()).or_insert(config).clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<ClientConfig>>> {
        // A panic while holding the lock leaves at worst a missing entry.
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn build(&self, tls: &UpstreamTls) -> Result<ClientConfig, String> {
        let mut provider = (*self.provider).clone();
        if !tls.cipher_suites().is_empty() {
            provider.cipher_suites.retain(|s| {
                s.suite()
                    .as_str()
                    .and_then(cipher_suite)
                    .is_some_and(|name| {
                        tls.cipher_suites()
                            .iter()
                            .any(|n| cipher_suite(n) == Some(name))
                    })
            });
            if provider.cipher_suites.is_empty() {
                return Err(format!(
                    "none of the cipher suites {:?} is supported",
                    tls.cipher_suites()
                ));
            }
        }
        let provider = Arc::new(provider);
        let versions: &[&'static SupportedProtocolVersion] = if tls.tls13_only() {
            &[&TLS13]
        } else {
            &[&TLS13, &TLS12]
        };
        let roots = match tls.trusted_cas() {
            None => self.roots.clone(),
            Some(pems) => Arc::new(roots_from(pems)?),
        };
        let verifier: Arc<dyn ServerCertVerifier> = if tls.validate_chain() {
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("cannot check the backend's chain: {e}"))?;
            if tls.validate_name() {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        } else {
            Arc::new(AnyChain {
                algorithms: provider.signature_verification_algorithms,
                check_name: tls.validate_name(),
            })
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match tls.client_identity() {
            None => Ok(builder.with_no_client_auth()),
            Some(identity) => {
                let fail = |e: String| format!("certificate '{}': {e}", identity.id);
                let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(identity.private_key_pem.as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| fail(e.to_string()))
            }
        }
    }
}

/// The name to send as SNI and to check: the setting's override, or the host.
pub fn server_name(tls: Option<&UpstreamTls>, host: &str) -> Result<ServerName<'static>, String> {
    let name = tls.and_then(|t| t.server_name()).unwrap_or(host);
    ServerName::try_from(name.to_owned()).map_err(|e| format!("server name '{name}': {e}"))
}

/// A root store of the CAs in `pems`.
fn roots_from(pems: &[String]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for pem in pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("a CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("a CA certificate: {e}"))?;
        }
    }
    Ok(roots)
}

/// `validateCertificateName=false`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // webpki checks the chain before the name: a name error means the
        // chain passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `validateCertificateChain=false`: any chain is accepted (the name is still
/// checked unless `check_name` is off), but the handshake must be signed by
/// the key of the certificate the backend sent.
#[derive(Debug)]
struct AnyChain {
    algorithms: WebPkiSupportedAlgorithms,
    check_name: bool,
}

impl ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self.check_name {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&parsed, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
