//! A client certificate as policies see it: the chain the client sent during
//! the handshake (DER, leaf first) and the leaf's fields in the forms .NET's
//! `X509Certificate2` gives them (`context.Request.Certificate`). Parsed once
//! per connection by the driver, which hands it to the connection machine.

use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate the client sent could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertParseError {
    /// The client sent an empty chain.
    #[error("the certificate chain is empty")]
    Empty,
    /// The leaf is not a DER X.509 certificate.
    #[error("the certificate is not valid DER X.509: {0}")]
    Der(String),
}

/// A client certificate: its chain and the leaf's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The chain as the client sent it, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The subject, most specific part first (`CN=client, O=Org, C=US`), as .NET prints it.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// SHA-1 of the leaf's DER, uppercase hex (.NET's `Thumbprint`).
    pub thumbprint: String,
    /// The serial number, uppercase hex, big-endian (.NET's `SerialNumber`).
    pub serial_number: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// DNS names from the subjectAltName extension.
    pub dns_names: Vec<String>,
}

impl ClientCertificate {
    /// Reads the leaf of `chain` (DER, leaf first, as TLS sends it).
    pub fn from_der_chain(chain: Vec<Vec<u8>>) -> Result<Self, CertParseError> {
        let leaf = chain.first().ok_or(CertParseError::Empty)?;
        let (_, cert) =
            X509Certificate::from_der(leaf).map_err(|e| CertParseError::Der(e.to_string()))?;
        let thumbprint =
            upper_hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf).as_ref());
        let serial_number = upper_hex(cert.raw_serial());
        let subject = dotnet_name(cert.subject());
        let issuer = dotnet_name(cert.issuer());
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                    dns_names.push((*dns).to_owned());
                }
            }
        }
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        Ok(ClientCertificate {
            subject,
            issuer,
            thumbprint,
            serial_number,
            not_before,
            not_after,
            common_name,
            dns_names,
            chain,
        })
    }

    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        self.chain.first().map(Vec::as_slice).unwrap_or_default()
    }
}

/// A distinguished name the way .NET prints it: relative names from the most
/// specific (last in DER order) to the least, `, `-separated.
fn dotnet_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for rdn in name.iter() {
        for atv in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                atv.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| atv.attr_type().to_id_string());
            let value = atv.as_str().map(str::to_owned).unwrap_or_default();
            parts.push(format!("{key}={value}"));
        }
    }
    parts.reverse();
    parts.join(", ")
}

/// Uppercase hex, as .NET prints thumbprints and serial numbers.
pub fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
