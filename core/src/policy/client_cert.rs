//! `validate-client-certificate`: the certificate the client sent during the
//! TLS handshake must be valid now, chain to an uploaded CA, not be on an
//! uploaded revocation list, and match one of the listed identities.
//!
//! Failures answer 403 with APIM's JSON body and set `context.LastError`
//! (a reason per cause), unless `ignore-error` lets the request go on.

use super::attrs;
use super::cert_store::{CertificateStore, ChainError};
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::param::json_error_response;
use super::xml::Element;
use crate::cert::ClientCertificate;

/// APIM allows at most this many `<identity>` elements.
pub const MAX_IDENTITIES: usize = 10;

/// The message of the 403 body, whatever the cause (the cause is in `context.LastError`).
pub const BODY_MESSAGE: &str = "Invalid client certificate";

/// One `<identity>`: every attribute given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// SHA-1 thumbprint, compared without regard to case.
    pub thumbprint: Option<String>,
    /// Serial number in hex, compared without regard to case.
    pub serial_number: Option<String>,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The whole subject as .NET prints it (`CN=client, O=Org`).
    pub subject: Option<String>,
    /// One of the subjectAltName DNS names, compared without regard to case.
    pub dns_name: Option<String>,
    /// The issuer's name as .NET prints it.
    pub issuer_subject: Option<String>,
    /// The issuer certificate's thumbprint.
    pub issuer_thumbprint: Option<String>,
    /// Id of the uploaded CA (or certificate) that must have issued it.
    pub issuer_certificate_id: Option<String>,
}

/// `<validate-client-certificate>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateClientCertificate {
    /// Check uploaded CRLs.
    pub validate_revocation: bool,
    /// Require a chain to an uploaded CA.
    pub validate_trust: bool,
    /// Refuse a certificate that is not valid yet.
    pub validate_not_before: bool,
    /// Refuse an expired certificate.
    pub validate_not_after: bool,
    /// Go on with the request when a check fails.
    pub ignore_error: bool,
    /// At least one must match (none listed: any certificate passing the checks).
    pub identities: Vec<Identity>,
}

/// Why a certificate was refused: `context.LastError.Reason` and `Message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client sent no certificate.
    Missing,
    /// No chain to an uploaded CA.
    NotTrusted,
    /// Past its NotAfter (or a CA of its chain is).
    Expired,
    /// Before its NotBefore (or a CA of its chain is).
    NotYetValid,
    /// On an uploaded revocation list.
    Revoked,
    /// No `<identity>` matched.
    IdentityMismatch,
}

impl Refusal {
    /// `context.LastError.Reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "ClientCertificateMissing",
            Refusal::NotTrusted => "ClientCertificateNotTrusted",
            Refusal::Expired => "ClientCertificateExpired",
            Refusal::NotYetValid => "ClientCertificateNotYetValid",
            Refusal::Revoked => "ClientCertificateRevoked",
            Refusal::IdentityMismatch => "ClientCertificateIdentityMismatch",
        }
    }

    /// `context.LastError.Message`.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "Client certificate is missing.",
            Refusal::NotTrusted => {
                "Client certificate is not trusted: its chain does not lead to an uploaded CA certificate."
            }
            Refusal::Expired => "Client certificate has expired.",
            Refusal::NotYetValid => "Client certificate is not valid yet.",
            Refusal::Revoked => "Client certificate has been revoked.",
            Refusal::IdentityMismatch => {
                "Client certificate does not match any of the allowed identities."
            }
        }
    }

    /// The failure the pipeline records: 403 with APIM's body.
    pub fn failure(self) -> Failure {
        Failure {
            reason: self.reason().into(),
            message: self.message().into(),
            response: Some(Box::new(json_error_response(
                403,
                "Forbidden",
                BODY_MESSAGE,
            ))),
        }
    }
}

const IDENTITY_ATTRS: &[&str] = &[
    "thumbprint",
    "serial-number",
    "common-name",
    "subject",
    "dns-name",
    "issuer-subject",
    "issuer-thumbprint",
    "issuer-certificate-id",
];

impl ValidateClientCertificate {
    /// Compiles `<validate-client-certificate>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "validate-revocation",
                "validate-trust",
                "validate-not-before",
                "validate-not-after",
                "ignore-error",
            ],
        )?;
        attrs::only_children(el, &["identities"])?;
        let mut identities = Vec::new();
        let mut seen_identities = false;
        for list in el.elements() {
            if seen_identities {
                return Err(PolicyError::at(list, "only one <identities> is allowed"));
            }
            seen_identities = true;
            attrs::only(list, &[])?;
            attrs::only_children(list, &["identity"])?;
            for id in list.elements() {
                if identities.len() == MAX_IDENTITIES {
                    return Err(PolicyError::at(
                        id,
                        format!("at most {MAX_IDENTITIES} <identity> elements are allowed"),
                    ));
                }
                identities.push(identity(id)?);
            }
        }
        Ok(ValidateClientCertificate {
            validate_revocation: attrs::boolean(el, "validate-revocation", true)?,
            validate_trust: attrs::boolean(el, "validate-trust", true)?,
            validate_not_before: attrs::boolean(el, "validate-not-before", true)?,
            validate_not_after: attrs::boolean(el, "validate-not-after", true)?,
            ignore_error: attrs::boolean(el, "ignore-error", false)?,
            identities,
        })
    }

    /// The policy's decision for `cert` at `now_unix_secs` (the first refusal).
    pub fn decide(
        &self,
        cert: Option<&ClientCertificate>,
        store: &CertificateStore,
        now_unix_secs: i64,
    ) -> Result<(), Refusal> {
        let cert = cert.ok_or(Refusal::Missing)?;
        if self.validate_not_before && now_unix_secs < cert.not_before {
            return Err(Refusal::NotYetValid);
        }
        if self.validate_not_after && now_unix_secs > cert.not_after {
            return Err(Refusal::Expired);
        }
        if self.validate_trust {
            // The leaf's dates were decided above (or are not to be checked):
            // the chain is built at a time inside the leaf's validity, so only
            // the CAs' dates can fail it.
            let at = now_unix_secs.clamp(cert.not_before, cert.not_after.max(cert.not_before));
            store
                .verify_chain(cert, at, self.validate_revocation)
                .map_err(|e| match e {
                    ChainError::NotTrusted(_) => Refusal::NotTrusted,
                    ChainError::Expired => Refusal::Expired,
                    ChainError::NotYetValid => Refusal::NotYetValid,
                    ChainError::Revoked => Refusal::Revoked,
                })?;
        } else if self.validate_revocation && store.listed_as_revoked(cert) {
            return Err(Refusal::Revoked);
        }
        if !self.identities.is_empty()
            && !self
                .identities
                .iter()
                .any(|i| identity_matches(i, cert, store))
        {
            return Err(Refusal::IdentityMismatch);
        }
        Ok(())
    }

    /// Runs the policy against the request's certificate at the context's wall-clock time.
    pub fn check(&self, ctx: &Context) -> Result<(), Failure> {
        let now = ctx.now_unix_ms.div_euclid(1000);
        let store = &ctx.fixed.certificates;
        match self.decide(ctx.request.certificate.as_deref(), store, now) {
            Ok(()) => Ok(()),
            Err(_) if self.ignore_error => Ok(()),
            Err(r) => Err(r.failure()),
        }
    }
}

fn identity(el: &Element) -> Result<Identity, PolicyError> {
    attrs::only(el, IDENTITY_ATTRS)?;
    let get = |name: &str| -> Result<Option<String>, PolicyError> {
        match el.attr(name) {
            None => Ok(None),
            Some(v) => {
                let v = v.trim();
                if v.starts_with("@(") || v.starts_with("@{") {
                    return Err(PolicyError::at(
                        el,
                        format!("attribute '{name}' does not allow policy expressions"),
                    ));
                }
                if v.is_empty() {
                    return Err(PolicyError::at(
                        el,
                        format!("attribute '{name}' must not be empty"),
                    ));
                }
                Ok(Some(v.to_string()))
            }
        }
    };
    let id = Identity {
        thumbprint: get("thumbprint")?,
        serial_number: get("serial-number")?,
        common_name: get("common-name")?,
        subject: get("subject")?,
        dns_name: get("dns-name")?,
        issuer_subject: get("issuer-subject")?,
        issuer_thumbprint: get("issuer-thumbprint")?,
        issuer_certificate_id: get("issuer-certificate-id")?,
    };
    if id.issuer_thumbprint.is_some() && id.issuer_certificate_id.is_some() {
        return Err(PolicyError::at(
            el,
            "'issuer-thumbprint' and 'issuer-certificate-id' cannot be used together",
        ));
    }
    if id == Identity::default() {
        return Err(PolicyError::at(
            el,
            "an <identity> needs at least one attribute",
        ));
    }
    Ok(id)
}

/// Hex as written by people: any case, with spaces or colons between bytes.
fn hex_eq(a: &str, b: &str) -> bool {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, ' ' | ':' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    clean(a) == clean(b)
}

/// Whether every attribute of `id` matches `cert`.
pub fn identity_matches(id: &Identity, cert: &ClientCertificate, store: &CertificateStore) -> bool {
    let ok =
        |want: &Option<String>, check: &dyn Fn(&str) -> bool| want.as_deref().is_none_or(check);
    let issuer_thumbprint = id.issuer_thumbprint.clone().or_else(|| {
        id.issuer_certificate_id
            .as_deref()
            // An id that names nothing matches no issuer.
            .map(|i| store.thumbprint_of(i).unwrap_or("-").to_string())
    });
    ok(&id.thumbprint, &|t| hex_eq(t, &cert.thumbprint))
        && ok(&id.serial_number, &|s| hex_eq(s, &cert.serial_number))
        && ok(&id.common_name, &|cn| {
            cert.common_name.as_deref() == Some(cn)
        })
        && ok(&id.subject, &|s| s == cert.subject)
        && ok(&id.dns_name, &|d| {
            cert.dns_names.iter().any(|n| n.eq_ignore_ascii_case(d))
        })
        && ok(&id.issuer_subject, &|s| s == cert.issuer)
        && ok(&issuer_thumbprint, &|t| {
            store
                .issuer_thumbprints(cert)
                .iter()
                .any(|have| hex_eq(t, have))
        })
}
