//! The certificates of a configuration revision as client-certificate checks
//! need them: the uploaded CAs as trust anchors, their revocation lists, and
//! the uploaded certificates (`context.Deployment.Certificates`). Built once
//! per compiled configuration from PEM text; every check is pure (the time is
//! an argument) and never reaches the network.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::cert::{upper_hex, ClientCertificate};

/// Why a certificate's chain does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No chain leads to an uploaded CA (or a signature, name constraint or
    /// key usage on the way is wrong).
    #[error("the certificate chain does not lead to a trusted CA ({0})")]
    NotTrusted(String),
    /// A certificate of the chain has expired.
    #[error("a certificate of the chain has expired")]
    Expired,
    /// A certificate of the chain is not valid yet.
    #[error("a certificate of the chain is not valid yet")]
    NotYetValid,
    /// A certificate of the chain is on its issuer's revocation list.
    #[error("a certificate of the chain is revoked")]
    Revoked,
}

/// One uploaded certificate (a CA or a certificate with a key), for issuer lookups.
#[derive(Debug)]
struct Known {
    id: String,
    /// The subject name as webpki reads it (compared with issuers).
    subject: Vec<u8>,
    thumbprint: String,
}

impl Known {
    fn new(id: &str, der: &CertificateDer<'_>) -> Known {
        Known {
            id: id.to_string(),
            subject: EndEntityCert::try_from(der)
                .map(|c| c.subject().to_vec())
                .unwrap_or_default(),
            thumbprint: thumbprint(der),
        }
    }
}

/// The trust material of one configuration revision.
#[derive(Debug, Default)]
pub struct CertificateStore {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    known: Vec<Known>,
    deployment: Vec<Arc<ClientCertificate>>,
}

/// What building the store skipped (unreadable PEM): a bad upload must not
/// take the whole revision down, so it is reported and left out.
pub type Skipped = Vec<String>;

impl CertificateStore {
    /// Builds the store from the snapshot's CAs (`id`, certificate PEM, CRL
    /// PEM) and certificates (`id`, chain PEM).
    pub fn build<'a>(
        cas: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
        certificates: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (CertificateStore, Skipped) {
        let mut store = CertificateStore::default();
        let mut skipped = Vec::new();
        for (id, pem, crl) in cas {
            let ders = match pem_certs(pem) {
                Ok(d) if !d.is_empty() => d,
                _ => {
                    skipped.push(format!(
                        "CA certificate `{id}`: no readable PEM certificate"
                    ));
                    continue;
                }
            };
            for der in ders {
                match webpki::anchor_from_trusted_cert(&der) {
                    Ok(a) => store.anchors.push(a.to_owned()),
                    Err(e) => {
                        skipped.push(format!("CA certificate `{id}`: {e}"));
                        continue;
                    }
                }
                store.known.push(Known::new(id, &der));
            }
            if let Some(crl) = crl {
                for item in CertificateRevocationListDer::pem_slice_iter(crl.as_bytes()) {
                    match item.map_err(|e| e.to_string()).and_then(|d| {
                        OwnedCertRevocationList::from_der(&d).map_err(|e| e.to_string())
                    }) {
                        Ok(list) => store.crls.push(CertRevocationList::Owned(list)),
                        Err(e) => skipped.push(format!("CRL of CA certificate `{id}`: {e}")),
                    }
                }
            }
        }
        for (id, pem) in certificates {
            let chain: Vec<Vec<u8>> = match pem_certs(pem) {
                Ok(d) => d.into_iter().map(|c| c.to_vec()).collect(),
                Err(_) => Vec::new(),
            };
            match ClientCertificate::from_der_chain(chain.clone()) {
                Ok(c) => {
                    if let Some(leaf) = chain.first() {
                        store
                            .known
                            .push(Known::new(id, &CertificateDer::from(leaf.as_slice())));
                    }
                    store.deployment.push(Arc::new(c));
                }
                Err(e) => skipped.push(format!("certificate `{id}`: {e}")),
            }
        }
        (store, skipped)
    }

    /// The uploaded certificates (`context.Deployment.Certificates`).
    pub fn deployment_certificates(&self) -> &[Arc<ClientCertificate>] {
        &self.deployment
    }

    /// Whether the store has any trusted CA.
    pub fn has_anchors(&self) -> bool {
        !self.anchors.is_empty()
    }

    /// Checks that `cert`'s chain leads to an uploaded CA at `at_unix_secs`
    /// (intermediates from the client's chain), and with `revocation` that no
    /// certificate of it is on an uploaded CRL. A CA without a CRL counts as
    /// not revoking anything: there is no network to ask.
    pub fn verify_chain(
        &self,
        cert: &ClientCertificate,
        at_unix_secs: i64,
        revocation: bool,
    ) -> Result<(), ChainError> {
        let leaf = CertificateDer::from(cert.leaf());
        let ee = EndEntityCert::try_from(&leaf)
            .map_err(|e| ChainError::NotTrusted(format!("unreadable certificate: {e}")))?;
        let intermediates: Vec<CertificateDer<'_>> = cert
            .chain
            .iter()
            .skip(1)
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let crl_refs: Vec<&CertRevocationList<'static>> = self.crls.iter().collect();
        let revocation = if revocation {
            RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
                b.with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Allow)
                    .with_expiration_policy(ExpirationPolicy::Ignore)
                    .build()
            })
        } else {
            None
        };
        let secs = u64::try_from(at_unix_secs).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertRevoked => ChainError::Revoked,
            webpki::Error::CertExpired { .. } => ChainError::Expired,
            webpki::Error::CertNotValidYet { .. } => ChainError::NotYetValid,
            other => ChainError::NotTrusted(format!("{other:?}")),
        })
    }

    /// Whether an uploaded CRL from `cert`'s issuer lists it (the check
    /// `validate-revocation` makes when `validate-trust` is off: by issuer
    /// name and serial number).
    pub fn listed_as_revoked(&self, cert: &ClientCertificate) -> bool {
        let leaf = CertificateDer::from(cert.leaf());
        let Ok(ee) = EndEntityCert::try_from(&leaf) else {
            return false;
        };
        self.crls.iter().any(|crl| {
            crl.issuer() == ee.issuer() && matches!(crl.find_serial(ee.serial()), Ok(Some(_)))
        })
    }

    /// Thumbprints of the certificates that could have issued `cert`: those of
    /// the client's chain, the uploaded CAs and certificates whose subject is
    /// `cert`'s issuer.
    pub fn issuer_thumbprints(&self, cert: &ClientCertificate) -> Vec<String> {
        let leaf = CertificateDer::from(cert.leaf());
        let Ok(ee) = EndEntityCert::try_from(&leaf) else {
            return Vec::new();
        };
        let issuer = ee.issuer();
        let mut out: Vec<String> = self
            .known
            .iter()
            .filter(|k| k.subject == issuer)
            .map(|k| k.thumbprint.clone())
            .collect();
        for der in cert.chain.iter().skip(1) {
            let d = CertificateDer::from(der.as_slice());
            if let Ok(c) = EndEntityCert::try_from(&d) {
                if c.subject() == issuer {
                    let t = thumbprint(&d);
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }

    /// The thumbprint of the uploaded CA or certificate with id `id`.
    pub fn thumbprint_of(&self, id: &str) -> Option<&str> {
        self.known
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.thumbprint.as_str())
    }

    /// .NET's `X509Certificate2.Verify()`: the leaf is valid at
    /// `now_unix_ms`, its chain leads to an uploaded CA, and nothing on it is
    /// revoked.
    pub fn verify(&self, cert: &ClientCertificate, now_unix_ms: i64) -> bool {
        let now = now_unix_ms.div_euclid(1000);
        now >= cert.not_before
            && now <= cert.not_after
            && self.verify_chain(cert, now, true).is_ok()
    }
}

/// The certificates of a PEM text, DER.
fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// SHA-1 of a DER certificate, uppercase hex (.NET's thumbprint).
fn thumbprint(der: &[u8]) -> String {
    upper_hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}
