//! A small PKI for client-certificate tests, made at test time with rcgen:
//! CAs (roots and intermediates), client certificates with chosen validity
//! and serial numbers, and CRLs. Dates are fixed, never the clock's: tests
//! pass [`NOW`] (or another fixed time) as the policy's wall clock.
//!
//! Shared by core's tests and the in-memory decision tests
//! (`tests/decisions_client_cert.rs` includes it by path).

#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};

/// The wall clock the tests use: 2030-01-01T00:00:00Z, Unix seconds.
pub const NOW: i64 = 1_893_456_000;

/// Validity of a good certificate: 2029-01-01 to 2031-01-01 (around [`NOW`]).
pub const GOOD: Validity = ((2029, 1, 1), (2031, 1, 1));
/// Validity of an expired certificate: 2020-01-01 to 2021-01-01.
pub const EXPIRED: Validity = ((2020, 1, 1), (2021, 1, 1));
/// Validity of a certificate not valid yet: 2035-01-01 to 2036-01-01.
pub const FUTURE: Validity = ((2035, 1, 1), (2036, 1, 1));

/// A validity as ((year, month, day), (year, month, day)).
pub type Validity = ((i32, u8, u8), (i32, u8, u8));

/// The UTC calendar date of a Unix time (Howard Hinnant's `civil_from_days`),
/// for certificates valid around a wall clock the test did not choose.
pub fn ymd(unix_secs: i64) -> (i32, u8, u8) {
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

/// Validity from `from` to `to` seconds around `now` (Unix seconds).
pub fn around(now: i64, from: i64, to: i64) -> Validity {
    (ymd(now + from), ymd(now + to))
}

/// A certificate authority that signs client certificates and CRLs.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// The CA certificate, DER.
    pub der: Vec<u8>,
}

/// A client certificate.
pub struct Client {
    /// The certificate, PEM.
    pub pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its private key, PEM.
    pub key_pem: String,
}

fn dn(cn: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = dn(cn, "Portcullis Tests");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

impl Ca {
    /// A self-signed root named `cn`.
    pub fn root(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let params = ca_params(cn);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA named `cn`, signed by this one.
    pub fn intermediate(&self, cn: &str) -> Ca {
        let key = KeyPair::generate().expect("intermediate key");
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer).expect("intermediate");
        Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate for `cn` (and DNS name `{cn}.clients.test`), with
    /// `serial` and the validity `(from, to)` as (year, month, day).
    pub fn client(&self, cn: &str, serial: u64, (from, to): Validity) -> Client {
        let key = KeyPair::generate().expect("client key");
        let mut params =
            CertificateParams::new(vec![format!("{cn}.clients.test")]).expect("client params");
        params.distinguished_name = dn(cn, "Client Org");
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        Client {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A CRL issued 2029-06-01, next update 2031-06-01, revoking `serials`.
    pub fn crl(&self, serials: &[u64]) -> String {
        self.crl_between(serials, ((2029, 6, 1), (2031, 6, 1)))
    }

    /// A CRL issued at the first date, next update at the second, revoking `serials`.
    pub fn crl_between(&self, serials: &[u64], (this, next): Validity) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(this.0, this.1, this.2),
            next_update: date_time_ymd(next.0, next.1, next.2),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(this.0, this.1, this.2),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("crl")
            .pem()
            .expect("crl pem")
    }
}
