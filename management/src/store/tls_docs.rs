//! Certificates, CA certificates and custom hostnames as stored: reading an
//! upload (PEM chain and key, or PKCS#12), checking the key against the leaf,
//! and what the REST API shows of each (never a private key or a password).

use std::fmt;

use base64::Engine;
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::Hostname;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;

use super::StoreError;

/// What the REST API shows of a certificate's leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificateInfo {
    /// The subject, .NET style (`CN=api.example.com, O=Example`).
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// SHA-1 of the DER, uppercase hex (APIM's and .NET's thumbprint).
    pub thumbprint: String,
    /// The serial number, uppercase hex.
    pub serial_number: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// DNS names of the subjectAltName extension.
    #[serde(default)]
    pub dns_names: Vec<String>,
}

/// A certificate chain with its private key, as stored: the key only sealed
/// (see `kek.rs`); the plain key lives in memory only, for snapshots.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificateDoc {
    pub id: String,
    /// The chain, PEM, leaf first.
    pub certificate_pem: String,
    /// The leaf's fields, read once at upload.
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// The private key sealed with the key-encryption key.
    pub sealed_private_key: String,
    /// The private key, PEM; never serialized.
    #[serde(skip)]
    pub private_key_pem: String,
}

impl fmt::Debug for CertificateDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateDoc")
            .field("id", &self.id)
            .field("thumbprint", &self.info.thumbprint)
            .finish_non_exhaustive()
    }
}

impl CertificateDoc {
    /// The body responses and the audit log show: no key, sealed or not.
    pub fn to_output(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.info).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("id".to_owned(), self.id.clone().into());
            map.insert(
                "certificatePem".to_owned(),
                self.certificate_pem.clone().into(),
            );
            map.insert(
                "hasPrivateKey".to_owned(),
                (!self.sealed_private_key.is_empty()).into(),
            );
        }
        value
    }
}

/// A certificate upload: PEM chain and key, or a base64 PKCS#12 file and its password.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateInput {
    id: String,
    #[serde(default)]
    certificate_pem: Option<String>,
    #[serde(default)]
    private_key_pem: Option<String>,
    /// `data` is APIM's name for it, so APIM-shaped uploads work unchanged.
    #[serde(default, alias = "data")]
    pfx: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// A certificate read from an upload, its key in the clear (not sealed yet).
pub(crate) struct Upload {
    pub id: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub info: CertificateInfo,
}

/// Reads a certificate upload and checks that the key belongs to the leaf.
pub(crate) fn read_certificate_upload(body: serde_json::Value) -> Result<Upload, StoreError> {
    let input: CertificateInput = serde_json::from_value(body)
        .map_err(|e| StoreError::Invalid(format!("invalid certificate body: {e}")))?;
    let id = input.id;
    let invalid = |why: String| StoreError::Invalid(format!("certificate `{id}`: {why}"));
    let (chain, key) = match (input.certificate_pem, input.private_key_pem, input.pfx) {
        (Some(cert), Some(key), None) => {
            if input.password.is_some() {
                return Err(invalid("`password` goes with `pfx` only".to_owned()));
            }
            read_pem_pair(&cert, &key).map_err(invalid)?
        }
        (None, None, Some(pfx)) => {
            read_pfx(&pfx, input.password.as_deref().unwrap_or_default()).map_err(invalid)?
        }
        _ => {
            return Err(invalid(
                "give either `certificatePem` and `privateKeyPem` (PEM, leaf first) or `pfx` (base64 PKCS#12) and `password`"
                    .to_owned(),
            ))
        }
    };
    check_key_matches(&chain, &key).map_err(invalid)?;
    let info = certificate_info(&chain).map_err(invalid)?;
    Ok(Upload {
        certificate_pem: chain
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect(),
        private_key_pem: key_pem(&key),
        info,
        id,
    })
}

/// The chain and key of a PEM upload.
fn read_pem_pair(
    cert: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = read_pem_chain(cert, "certificatePem")?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
        format!("privateKeyPem holds no unencrypted private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}")
    })?;
    Ok((chain, key))
}

/// The `CERTIFICATE` blocks of `text`, at least one.
fn read_pem_chain(text: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field} is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{field} holds no CERTIFICATE block"));
    }
    for (index, der) in chain.iter().enumerate() {
        ClientCertificate::from_der_chain(vec![der.to_vec()])
            .map_err(|e| format!("{field}: certificate {}: {e}", index + 1))?;
    }
    Ok(chain)
}

/// The chain and key of a PKCS#12 upload: its first key with the certificates
/// that go with it, leaf first.
fn read_pfx(
    pfx: &str,
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let compact: String = pfx.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("pfx is not base64: {e}"))?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        &bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => {
            "wrong password: the PKCS#12 file's integrity check (MAC) fails with it".to_owned()
        }
        p12_keystore::error::Error::Pkcs5Error(_) | p12_keystore::error::Error::UnpadError => {
            "the PKCS#12 file does not decrypt with this password".to_owned()
        }
        other => format!("pfx is not a PKCS#12 file this plane reads: {other}"),
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| "the PKCS#12 file holds no private key with its certificate".to_owned())?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err("the PKCS#12 file's private key has no certificate".to_owned());
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// Whether the key is one the gateway can sign with and belongs to the leaf:
/// the key's public half compared with the leaf's SubjectPublicKeyInfo.
fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            format!(
                "the private key is not usable (RSA 2048+ bits, ECDSA P-256/P-384 or Ed25519): {e}"
            )
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            "the private key does not match the leaf certificate (the first certificate of the chain)"
                .to_owned(),
        ),
        Err(e) => Err(format!(
            "the private key cannot be checked against the leaf certificate: {e}"
        )),
    }
}

/// What the REST API shows of the leaf of `chain`.
fn certificate_info(chain: &[CertificateDer<'static>]) -> Result<CertificateInfo, String> {
    let leaf = chain
        .first()
        .ok_or_else(|| "the chain is empty".to_owned())?;
    let parsed = ClientCertificate::from_der_chain(vec![leaf.to_vec()])
        .map_err(|e| format!("the leaf certificate: {e}"))?;
    Ok(CertificateInfo {
        subject: parsed.subject,
        issuer: parsed.issuer,
        thumbprint: parsed.thumbprint,
        serial_number: parsed.serial_number,
        not_before: rfc3339(parsed.not_before),
        not_after: rfc3339(parsed.not_after),
        dns_names: parsed.dns_names,
    })
}

fn rfc3339(unix: i64) -> String {
    crate::http::clock::rfc3339(u64::try_from(unix).unwrap_or(0))
}

/// One PEM block, 64 base64 characters a line.
fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    match key {
        PrivateKeyDer::Pkcs1(k) => pem_block("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => pem_block("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
        // A future key form: PKCS#8 is what every form above can be read as.
        _ => pem_block("PRIVATE KEY", key.secret_der()),
    }
}

/// A certificate revocation list, as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CrlInfo {
    /// When it was issued, RFC 3339.
    pub this_update: String,
    /// When the next one is due, RFC 3339, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    /// How many certificates it revokes.
    pub revoked_count: usize,
}

/// A trusted CA with its revocation lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CaCertificateDoc {
    pub id: String,
    /// The CA's certificate, one PEM block.
    pub certificate_pem: String,
    /// Its CRLs, PEM `X509 CRL` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_pem: Option<String>,
    /// The certificate's fields.
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// Whether it signed itself (a root); otherwise an intermediate.
    pub self_signed: bool,
    /// `root` or `intermediate`.
    pub kind: String,
    /// One entry per CRL, in upload order.
    #[serde(default)]
    pub crls: Vec<CrlInfo>,
}

/// A CA upload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaInput {
    id: String,
    certificate_pem: String,
    #[serde(default)]
    crl_pem: Option<String>,
}

/// Reads a CA upload: one certificate, and CRLs that it issued.
pub(crate) fn read_ca_upload(body: serde_json::Value) -> Result<CaCertificateDoc, StoreError> {
    use x509_parser::prelude::FromDer;
    let mut body = body;
    if let serde_json::Value::Object(map) = &mut body {
        // What a GET shows may be sent back: the fields read from the upload are
        // computed again, never taken from the body.
        for shown in [
            "subject",
            "issuer",
            "thumbprint",
            "serialNumber",
            "notBefore",
            "notAfter",
            "dnsNames",
            "selfSigned",
            "kind",
            "crls",
        ] {
            map.remove(shown);
        }
    }
    let input: CaInput = serde_json::from_value(body)
        .map_err(|e| StoreError::Invalid(format!("invalid CA certificate body: {e}")))?;
    let id = input.id;
    let invalid = |why: String| StoreError::Invalid(format!("CA certificate `{id}`: {why}"));
    let chain = read_pem_chain(&input.certificate_pem, "certificatePem").map_err(invalid)?;
    let [der] = chain.as_slice() else {
        return Err(invalid(
            "certificatePem must hold exactly one CERTIFICATE block (upload each CA on its own)"
                .to_owned(),
        ));
    };
    let info = certificate_info(&chain).map_err(invalid)?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|e| invalid(format!("certificatePem: {e}")))?;
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    let mut crls = Vec::new();
    let crl_pem = match input.crl_pem.filter(|p| !p.trim().is_empty()) {
        None => None,
        Some(text) => {
            let blocks = x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("crlPem is not PEM: {e}")))?;
            if blocks.is_empty() {
                return Err(invalid("crlPem holds no X509 CRL block".to_owned()));
            }
            let mut normalized = String::new();
            for (index, block) in blocks.iter().enumerate() {
                let n = index + 1;
                if block.label != "X509 CRL" {
                    return Err(invalid(format!(
                        "crlPem block {n} is `{}`, not X509 CRL",
                        block.label
                    )));
                }
                let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(
                    &block.contents,
                )
                .map_err(|e| invalid(format!("crlPem: CRL {n} does not parse: {e}")))?;
                if crl.issuer().as_raw() != cert.subject().as_raw() {
                    return Err(invalid(format!(
                        "crlPem: CRL {n} was issued by `{}`, not by this CA (`{}`)",
                        crl.issuer(),
                        cert.subject()
                    )));
                }
                crls.push(CrlInfo {
                    this_update: rfc3339(crl.last_update().timestamp()),
                    next_update: crl.next_update().map(|t| rfc3339(t.timestamp())),
                    revoked_count: crl.iter_revoked_certificates().count(),
                });
                normalized.push_str(&pem_block("X509 CRL", &block.contents));
            }
            Some(normalized)
        }
    };
    Ok(CaCertificateDoc {
        certificate_pem: pem_block("CERTIFICATE", der.as_ref()),
        crl_pem,
        info,
        self_signed,
        kind: if self_signed { "root" } else { "intermediate" }.to_owned(),
        crls,
        id,
    })
}

/// A custom hostname of one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HostnameDoc {
    /// The gateway it belongs to.
    pub gateway_id: String,
    /// The hostname, as core models it.
    pub hostname: Hostname,
}

impl HostnameDoc {
    /// The entity id: `<gateway>/<hostname>` (a `/` is in neither).
    pub fn entity_id(gateway: &str, hostname: &str) -> String {
        format!("{gateway}/{hostname}")
    }

    /// The body responses show: core's hostname and the gateway's id.
    pub fn to_output(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.hostname).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("gatewayId".to_owned(), self.gateway_id.clone().into());
        }
        value
    }
}

/// Reads a hostname's PUT body: core's `Hostname`, whose `hostname` (if
/// given) must be the one in the URL.
pub(crate) fn read_hostname(
    gateway: &str,
    hostname: &str,
    body: serde_json::Value,
) -> Result<HostnameDoc, StoreError> {
    let serde_json::Value::Object(mut map) = body else {
        return Err(StoreError::Invalid(
            "the hostname body must be a JSON object".to_owned(),
        ));
    };
    // What a GET shows may be sent back as it is.
    match map.remove("gatewayId") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(given)) if given == gateway => {}
        Some(other) => {
            return Err(StoreError::Invalid(format!(
                "`gatewayId` in the body ({other}) differs from gateway `{gateway}` in the URL"
            )))
        }
    }
    match map.get("hostname") {
        None | Some(serde_json::Value::Null) => {
            map.insert("hostname".to_owned(), hostname.into());
        }
        Some(serde_json::Value::String(given)) if given == hostname => {}
        Some(other) => {
            return Err(StoreError::Invalid(format!(
                "`hostname` in the body ({other}) differs from `{hostname}` in the URL"
            )))
        }
    }
    let parsed: Hostname = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| StoreError::Invalid(format!("invalid hostname body: {e}")))?;
    Ok(HostnameDoc {
        gateway_id: gateway.to_owned(),
        hostname: parsed,
    })
}
