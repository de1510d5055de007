//! TLS for the management plane: a certificate and key from files, or a self-signed CA
//! and server certificate generated once into `<data>/tls/` for trials.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// How the management plane serves: plain HTTP, or HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP (for loopback or behind a TLS-terminating proxy).
    Plain,
    /// HTTPS with a PEM certificate chain and a PEM private key.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// HTTPS with a certificate for localhost, 127.0.0.1 and ::1 signed by a CA generated
    /// into `<data>/tls/` on the first run and reused afterwards.
    SelfSigned,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The self-signed certificates could not be generated or written.
    #[error(transparent)]
    SelfSigned(#[from] portcullis_certs::LocalTlsError),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files of the self-signed setup, inside `<data>/tls/`.
pub use portcullis_certs::LocalTlsPaths as SelfSignedPaths;

/// A ready rustls server configuration and, for the self-signed mode, the CA to trust.
pub struct ServerTls {
    /// The rustls configuration (ALPN `h2`, `http/1.1`).
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate clients should trust, when it was generated here.
    pub ca_path: Option<PathBuf>,
}

/// Builds the TLS configuration for `mode`; `None` for [`TlsMode::Plain`].
pub fn server_tls(mode: &TlsMode, data_dir: &Path) -> Result<Option<ServerTls>, TlsError> {
    match mode {
        TlsMode::Plain => Ok(None),
        TlsMode::Files { cert, key } => Ok(Some(ServerTls {
            config: server_config(cert, key)?,
            ca_path: None,
        })),
        TlsMode::SelfSigned => {
            let paths = ensure_self_signed(data_dir)?;
            Ok(Some(ServerTls {
                config: server_config(&paths.server_cert, &paths.server_key)?,
                ca_path: Some(paths.ca_cert),
            }))
        }
    }
}

/// Generates the CA and server certificate into `<data_dir>/tls/` unless they are all there.
pub fn ensure_self_signed(data_dir: &Path) -> Result<SelfSignedPaths, TlsError> {
    let dir = data_dir.join("tls");
    crate::data_dir::create_private_dir(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(portcullis_certs::ensure_local_tls(
        &dir,
        "Portcullis management self-signed CA",
    )?)
}

/// Loads a PEM certificate chain and private key into a rustls server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_files_are_generated_once_and_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ensure_self_signed(dir.path()).expect("generate");
        let ca = fs::read(&first.ca_cert).expect("ca");
        let second = ensure_self_signed(dir.path()).expect("reuse");
        assert_eq!(
            fs::read(&second.ca_cert).expect("ca"),
            ca,
            "reused, not regenerated"
        );
        server_config(&second.server_cert, &second.server_key).expect("rustls accepts it");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&second.server_key)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key readable by its owner only");
        }
    }

    #[test]
    fn missing_and_empty_files_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Io { .. })
        ));
        fs::write(&cert, "not pem").expect("write");
        fs::write(&key, "").expect("write");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Pem { .. })
        ));
    }
}
