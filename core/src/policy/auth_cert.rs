//! `authentication-certificate`: the certificate the gateway presents to the
//! backend (in the inbound or backend section) or to a `send-request`
//! target (inside it), chosen from the snapshot's certificates by id or by
//! SHA-1 thumbprint; and the backend TLS the policies chose for a request.

use std::sync::Arc;

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::transform::eval;
use super::xml::Element;
use crate::expr::Template;
use crate::http::{ClientIdentity, UpstreamTls};

/// How a policy names a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRef<'a> {
    /// By its id (`certificate-id`).
    Id(&'a str),
    /// By the SHA-1 thumbprint of its leaf, hex in any case (`thumbprint`).
    Thumbprint(&'a str),
}

/// The TLS facts of a configuration policies look up (the compiled
/// configuration implements it).
pub trait TlsLookup {
    /// The TLS settings of backend entity `id`, if it has some.
    fn backend_tls(&self, id: &str) -> Option<Arc<UpstreamTls>>;

    /// The certificate `by` names, if the configuration has it.
    fn certificate(&self, by: CertRef<'_>) -> Option<Arc<ClientIdentity>>;
}

/// A configuration without backend TLS settings or certificates.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTls;

impl TlsLookup for NoTls {
    fn backend_tls(&self, _id: &str) -> Option<Arc<UpstreamTls>> {
        None
    }

    fn certificate(&self, _by: CertRef<'_>) -> Option<Arc<ClientIdentity>> {
        None
    }
}

/// `<authentication-certificate certificate-id | thumbprint />`.
#[derive(Debug, Clone)]
pub enum AuthenticationCertificate {
    /// `certificate-id`.
    Id(Template),
    /// `thumbprint`.
    Thumbprint(Template),
}

impl AuthenticationCertificate {
    /// Compiles the element; `body`/`password` (a PKCS#12 from an
    /// expression) are refused: certificates come from the snapshot.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["thumbprint", "certificate-id", "body", "password"])?;
        if el.attr("body").is_some() || el.attr("password").is_some() {
            return Err(PolicyError::at(
                el,
                "body and password (a certificate from an expression) are not supported yet: \
                 upload the certificate and name it with certificate-id or thumbprint",
            ));
        }
        let id = attrs::template(el, "certificate-id")?;
        let thumbprint = attrs::template(el, "thumbprint")?;
        match (id, thumbprint) {
            (Some(id), None) => Ok(AuthenticationCertificate::Id(id)),
            (None, Some(t)) => Ok(AuthenticationCertificate::Thumbprint(t)),
            (Some(_), Some(_)) => Err(PolicyError::at(
                el,
                "give either certificate-id or thumbprint, not both",
            )),
            (None, None) => Err(PolicyError::at(
                el,
                "certificate-id or thumbprint is required",
            )),
        }
    }

    /// The certificate named by a literal (no expression), for checking at
    /// load time that it exists.
    pub fn static_ref(&self) -> Option<CertRef<'_>> {
        match self {
            AuthenticationCertificate::Id(t) => t.literal().map(|s| CertRef::Id(s.trim())),
            AuthenticationCertificate::Thumbprint(t) => {
                t.literal().map(|s| CertRef::Thumbprint(s.trim()))
            }
        }
    }

    /// The certificate this names for the request in `ctx`.
    pub fn identity(
        &self,
        ctx: &Context,
        tls: &dyn TlsLookup,
    ) -> Result<Arc<ClientIdentity>, Failure> {
        let (value, found) = match self {
            AuthenticationCertificate::Id(t) => {
                let v = eval(t, ctx)?;
                let found = tls.certificate(CertRef::Id(v.trim()));
                (format!("certificate '{}'", v.trim()), found)
            }
            AuthenticationCertificate::Thumbprint(t) => {
                let v = eval(t, ctx)?;
                let found = tls.certificate(CertRef::Thumbprint(v.trim()));
                (format!("certificate with thumbprint '{}'", v.trim()), found)
            }
        };
        found.ok_or_else(|| Failure::new("CertificateNotFound", format!("{value} does not exist")))
    }
}

/// The backend TLS policies chose for a request.
#[derive(Debug, Clone, Default)]
pub struct BackendTlsChoice {
    /// `set-backend-service` chose the backend: a backend entity's settings,
    /// or none (a base URL, a backend without `tls`). `None`: the API's own.
    pub backend: Option<Option<Arc<UpstreamTls>>>,
    /// The certificate `authentication-certificate` chose, presented instead
    /// of the backend's own.
    pub certificate: Option<Arc<ClientIdentity>>,
}

impl BackendTlsChoice {
    /// Whether no policy chose anything (the API's settings apply as they are).
    pub fn is_default(&self) -> bool {
        self.backend.is_none() && self.certificate.is_none()
    }

    /// The settings for the forwarded request, given the API's own.
    pub fn resolve(&self, api: Option<&Arc<UpstreamTls>>) -> Option<Arc<UpstreamTls>> {
        let base = match &self.backend {
            Some(chosen) => chosen.clone(),
            None => api.cloned(),
        };
        let Some(identity) = &self.certificate else {
            return base;
        };
        let with = match base {
            Some(base) => base.with_identity(identity.clone()),
            None => UpstreamTls::default().with_identity(identity.clone()),
        };
        Some(Arc::new(with))
    }
}
