//! Local TLS for trials: a private CA and a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, generated once into a directory and
//! reused afterwards. The management plane's `--self-signed` and the HTTPS
//! listener of `portcullis demo` both take theirs from here.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Files are written readable by their owner only (the certificates too, like
/// everything in a data directory).
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Why the local CA and certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LocalTlsError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// rcgen could not generate the certificates.
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The four PEM files of a local setup.
#[derive(Debug, Clone)]
pub struct LocalTlsPaths {
    /// The CA certificate clients trust (`ca.pem`).
    pub ca_cert: PathBuf,
    /// The CA's private key (`ca-key.pem`).
    pub ca_key: PathBuf,
    /// The server certificate (`server.pem`).
    pub server_cert: PathBuf,
    /// The server's private key (`server-key.pem`).
    pub server_key: PathBuf,
}

impl LocalTlsPaths {
    /// The paths inside `dir`.
    pub fn new(dir: &Path) -> Self {
        LocalTlsPaths {
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

/// Generates a CA named `ca_name` and a server certificate for localhost,
/// 127.0.0.1 and ::1 it signed into `dir` (which must exist; keep it private)
/// unless all four files are there already.
pub fn ensure_local_tls(dir: &Path, ca_name: &str) -> Result<LocalTlsPaths, LocalTlsError> {
    let paths = LocalTlsPaths::new(dir);
    if paths.all_exist() {
        tracing::debug!(ca = %paths.ca_cert.display(), "reusing the self-signed certificate");
        return Ok(paths);
    }

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, ca_name);
    name.push(DnType::OrganizationName, "Portcullis");
    ca_params.distinguished_name = name;
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

/// Writes `bytes` to `path` through a temporary file and a rename, readable by its
/// owner only.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LocalTlsError> {
    let io_err = |source| LocalTlsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
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
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ensure_local_tls(dir.path(), "test CA").expect("generate");
        let ca = fs::read(&first.ca_cert).expect("ca");
        let second = ensure_local_tls(dir.path(), "test CA").expect("reuse");
        assert_eq!(fs::read(&second.ca_cert).expect("ca"), ca, "reused");
        // A missing file makes a fresh set.
        fs::remove_file(&second.server_key).expect("remove");
        let third = ensure_local_tls(dir.path(), "test CA").expect("regenerate");
        assert_ne!(fs::read(&third.ca_cert).expect("ca"), ca, "regenerated");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&third.server_key)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key readable by its owner only");
        }
    }
}
