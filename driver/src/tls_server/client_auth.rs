//! Client certificates on hostnames that negotiate them: the handshake asks
//! for one (optionally: a client may send none) and takes any chain, as APIM
//! does; whether it is trusted, current or revoked is the policies' decision
//! (`validate-client-certificate`), which can answer with a body a TLS alert
//! cannot carry. The handshake signature is still checked, so a client proves
//! it holds the key of the certificate it sent.

use std::sync::Arc;

use futures_rustls::rustls::client::danger::HandshakeSignatureValid;
use futures_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use futures_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use futures_rustls::rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use portcullis_core::config::CaCertificate;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Asks for a client certificate, accepts any chain, checks the signature.
#[derive(Debug)]
pub struct AnyClientCert {
    /// The subjects of the configuration's CAs, sent as hints so a client
    /// holding several certificates picks one the policies may trust.
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    /// A verifier hinting the subjects of `cas` (a CA that does not parse is
    /// left out of the hints; the policies report it).
    pub fn new(cas: &[CaCertificate], provider: &CryptoProvider) -> Arc<Self> {
        let hints = cas
            .iter()
            .filter_map(|ca| subject(&ca.certificate_pem))
            .collect();
        Arc::new(AnyClientCert {
            hints,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

/// The DER subject of the first certificate in `pem`.
fn subject(pem: &str) -> Option<DistinguishedName> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(DistinguishedName::from(cert.subject().as_raw().to_vec()))
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
