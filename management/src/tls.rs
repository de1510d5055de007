//! TLS for the management plane: a certificate and key from files, or a self-signed CA
//! and server certificate generated once into `<data>/tls/` for trials.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
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
    /// rcgen could not generate the self-signed certificates.
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files of the self-signed setup, inside `<data>/tls/`.
#[derive(Debug, Clone)]
pub struct SelfSignedPaths {
    /// The CA certificate clients trust (`ca.pem`).
    pub ca_cert: PathBuf,
    /// The CA's private key (`ca-key.pem`).
    pub ca_key: PathBuf,
    /// The server certificate (`server.pem`).
    pub server_cert: PathBuf,
    /// The server's private key (`server-key.pem`).
    pub server_key: PathBuf,
}

impl SelfSignedPaths {
    /// The paths under `<data_dir>/tls/`.
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        SelfSignedPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }

    fn all_exist(&self) -> bool {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
        ]
        .iter()
        .all(|p| p.is_file())
    }
}

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
    let paths = SelfSignedPaths::new(data_dir);
    if paths.all_exist() {
        tracing::debug!(ca = %paths.ca_cert.display(), "reusing the self-signed certificate");
        return Ok(paths);
    }
    let dir = data_dir.join("tls");
    crate::data_dir::create_private_dir(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "Portcullis management self-signed CA");
    ca_name.push(DnType::OrganizationName, "Portcullis");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::CommonName, "localhost");
    server_params.distinguished_name = server_name;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    // Keys first, the CA certificate last: a run interrupted half-way leaves a set
    // that `all_exist` refuses, so the next run generates a fresh one.
    write_file(&paths.server_key, server_key.serialize_pem().as_bytes())?;
    write_file(&paths.ca_key, ca_key.serialize_pem().as_bytes())?;
    write_file(&paths.server_cert, server_cert.pem().as_bytes())?;
    write_file(&paths.ca_cert, ca_cert.pem().as_bytes())?;
    tracing::info!(ca = %paths.ca_cert.display(), "generated a self-signed certificate");
    Ok(paths)
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

/// Writes `bytes` to `path` through a temporary file and a rename, readable by its
/// owner only (the certificates too: everything in the data directory is).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let io_err = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(crate::data_dir::FILE_MODE);
    }
    let mut file = options.open(&tmp).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err)
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
