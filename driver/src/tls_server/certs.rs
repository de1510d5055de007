//! The HTTPS listener's certificates: which one a handshake gets by SNI
//! (exact name, then wildcard, then the default), and the resolver rustls asks,
//! whose set can be swapped while connections stay open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_rustls::rustls::crypto::CryptoProvider;
use futures_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use futures_rustls::rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::names::NameTable;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate or key file could not be read, or holds no usable PEM block.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate chain and key do not go together, or rustls refused them.
    #[error("{cert}: {reason}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// What rustls or the parser said.
        reason: String,
    },
}

/// One certificate chain with its key and the host names it serves (its
/// subject alternative names, lowercased; `*.example.com` for a wildcard).
#[derive(Debug, Clone)]
pub struct ServedCert {
    /// The chain and signing key rustls serves.
    pub key: Arc<CertifiedKey>,
    /// DNS names from the leaf's subjectAltName (its common name when it has none).
    pub names: Vec<String>,
}

impl ServedCert {
    /// Loads a PEM chain (leaf first) and its PEM private key (PKCS#8, PKCS#1
    /// or SEC1). Blocking file IO: run it off the async threads.
    pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Self, CertError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| CertError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        ServedCert::from_pem((cert, &read(cert)?), (key, &read(key)?), provider)
    }

    /// A served certificate from the PEM contents of `cert` and `key` (their
    /// paths name them in errors).
    pub fn from_pem(
        (cert, pem): (&Path, &[u8]),
        (key, key_pem): (&Path, &[u8]),
        provider: &CryptoProvider,
    ) -> Result<Self, CertError> {
        let file = |path: &Path, reason: String| CertError::File {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(file(cert, "no CERTIFICATE block".into()));
        }
        let private = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| file(key, format!("no usable private key: {e}")))?;
        ServedCert::from_der(chain, private, provider).map_err(|reason| CertError::Unusable {
            cert: cert.to_owned(),
            reason,
        })
    }

    /// A served certificate from DER; `Err` says why rustls or the parser refused it.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<Self, String> {
        let names = match chain.first() {
            Some(leaf) => dns_names(leaf)?,
            None => return Err("empty certificate chain".into()),
        };
        let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| e.to_string())?;
        Ok(ServedCert {
            key: Arc::new(key),
            names,
        })
    }
}

/// The leaf's DNS names: its subjectAltName DNS entries, or (for old
/// certificates without one) its common name.
fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let san = cert.subject_alternative_name().map_err(|e| e.to_string())?;
    let mut names: Vec<String> = match san {
        Some(san) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        None => cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect(),
    };
    names.dedup();
    Ok(names)
}

/// The certificates of the listener, indexed for the SNI choice.
#[derive(Debug, Default)]
pub struct CertSet {
    table: NameTable<Arc<CertifiedKey>>,
}

impl CertSet {
    /// A set of `certs`; the first is the default, served to clients that send
    /// no SNI name (an IP address, say) or a name no certificate has. When two
    /// certificates claim a name, the first given keeps it.
    pub fn new(certs: &[ServedCert]) -> Self {
        let mut table = NameTable::default();
        if let Some(first) = certs.first() {
            table.set_default(first.key.clone());
        }
        for cert in certs {
            for name in &cert.names {
                table.insert(name, cert.key.clone());
            }
        }
        CertSet { table }
    }

    /// The certificate for SNI name `sni`: exact, then a wildcard one label
    /// deep (`*.example.com` serves `api.example.com`, not `a.b.example.com`,
    /// as browsers match), then the default.
    pub fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.choose(sni).cloned()
    }
}

/// What rustls asks for a certificate: reads the current [`CertSet`], which a
/// new configuration can replace with [`CertResolver::replace`] while
/// handshakes and open connections go on (open ones keep what they got).
#[derive(Debug, Default)]
pub struct CertResolver {
    set: ArcSwap<CertSet>,
}

impl CertResolver {
    /// A resolver serving `set`.
    pub fn new(set: CertSet) -> Self {
        CertResolver {
            set: ArcSwap::from_pointee(set),
        }
    }

    /// Serves `set` from the next handshake on.
    pub fn replace(&self, set: CertSet) {
        self.set.store(Arc::new(set));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().choose(hello.server_name())
    }
}
