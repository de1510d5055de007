//! `send-request` and `send-one-way-request`: calls to other services, which the
//! pipeline hands to the runtime and resumes from with the answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::attrs;
use super::auth_cert::{AuthenticationCertificate, TlsLookup};
use super::context::{Context, Request};
use super::error::{Failure, PolicyError};
use super::program::SectionKind;
use super::transform::{eval, AuthenticationBasic, SetBody, SetHeader, SetMethod};
use super::xml::Element;
use crate::callout::CalloutRequest;
use crate::expr::Template;
use crate::http::UpstreamTls;

/// An HTTP call a policy asks the runtime to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// Method.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// Body (may be empty).
    pub body: Bytes,
    /// Give up after this long.
    pub timeout: Duration,
    /// TLS for an `https://` URL other than the defaults (a certificate to
    /// present, from `authentication-certificate`).
    pub tls: Option<Arc<UpstreamTls>>,
}

// The call-out layer sits below policies, so the conversion lives on this side.
impl From<CallRequest> for CalloutRequest {
    fn from(call: CallRequest) -> Self {
        CalloutRequest {
            method: call.method,
            url: call.url,
            headers: call.headers,
            body: call.body,
            timeout: call.timeout,
        }
    }
}

/// `send-request` or `send-one-way-request`.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// Start from a copy of the current request (`mode="copy"`) or from nothing.
    pub copy: bool,
    /// Where the response goes (`send-request` only).
    pub response_variable: Option<String>,
    /// Timeout (APIM's default: 60 seconds).
    pub timeout: Duration,
    /// On failure, set the variable to null and go on instead of failing.
    pub ignore_error: bool,
    /// `set-url`.
    pub url: Option<Template>,
    /// `set-method`.
    pub method: Option<SetMethod>,
    /// `set-header`s.
    pub headers: Vec<SetHeader>,
    /// `set-body`.
    pub body: Option<SetBody>,
    /// `authentication-basic`.
    pub basic: Option<AuthenticationBasic>,
    /// `authentication-certificate`.
    pub certificate: Option<AuthenticationCertificate>,
    /// Whether this is `send-one-way-request` (nobody waits for the answer).
    pub one_way: bool,
}

impl SendRequest {
    /// Compiles `<send-request>` or `<send-one-way-request>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        let one_way = el.name == "send-one-way-request";
        if one_way {
            attrs::only(el, &["mode", "timeout"])?;
        } else {
            attrs::only(
                el,
                &["mode", "response-variable-name", "timeout", "ignore-error"],
            )?;
        }
        for c in el.elements() {
            match c.name.as_str() {
                "set-url"
                | "set-method"
                | "set-header"
                | "set-body"
                | "authentication-basic"
                | "authentication-certificate" => {}
                "authentication-managed-identity" | "proxy" => {
                    return Err(PolicyError::at(
                        c,
                        format!("<{}> is not supported in <{}>", c.name, el.name),
                    ));
                }
                other => {
                    return Err(PolicyError::at(
                        c,
                        format!("unexpected element <{other}> inside <{}>", el.name),
                    ));
                }
            }
        }
        let copy = match el.attr("mode").map(str::trim) {
            None | Some("new") => false,
            Some("copy") => true,
            Some(other) => {
                return Err(PolicyError::at(
                    el,
                    format!("mode must be new or copy, not '{other}'"),
                ))
            }
        };
        let timeout = Duration::from_secs(attrs::parsed::<u64>(el, "timeout")?.unwrap_or(60));
        let url = el.child("set-url").map(attrs::text_template).transpose()?;
        if !copy && url.is_none() {
            return Err(PolicyError::at(
                el,
                "<set-url> is required when mode is new",
            ));
        }
        if let Some(lit) = url.as_ref().and_then(|u| u.literal()) {
            let lit = lit.trim();
            if !(lit.starts_with("http://") || lit.starts_with("https://")) {
                return Err(PolicyError::at(
                    el,
                    format!("set-url must be an absolute http(s) URL, not '{lit}'"),
                ));
            }
        }
        Ok(SendRequest {
            copy,
            response_variable: el.attr("response-variable-name").map(str::to_string),
            timeout,
            ignore_error: attrs::boolean(el, "ignore-error", false)?,
            url,
            method: el.child("set-method").map(SetMethod::compile).transpose()?,
            headers: el
                .children_named("set-header")
                .map(|h| SetHeader::compile(h, SectionKind::Inbound))
                .collect::<Result<_, _>>()?,
            body: el
                .child("set-body")
                .map(|b| SetBody::compile(b, SectionKind::Inbound))
                .transpose()?,
            basic: el
                .child("authentication-basic")
                .map(AuthenticationBasic::compile)
                .transpose()?,
            certificate: el
                .child("authentication-certificate")
                .map(AuthenticationCertificate::compile)
                .transpose()?,
            one_way,
        })
    }

    /// Builds the request to send; expressions in it see the request being
    /// processed as `context.Request`, as in APIM. `tls` finds the
    /// certificate of `authentication-certificate`.
    pub fn build(&self, ctx: &Context, tls: &dyn TlsLookup) -> Result<CallRequest, Failure> {
        let mut req = if self.copy {
            ctx.request.clone()
        } else {
            Request {
                method: "GET".into(),
                ..Default::default()
            }
        };
        let url = match &self.url {
            Some(u) => eval(u, ctx)?.trim().to_string(),
            None => ctx.request.url.to_url_string(),
        };
        if let Some(m) = &self.method {
            req.method = m.compute(ctx)?;
        }
        for h in &self.headers {
            h.apply(ctx, &mut req.headers)?;
        }
        if let Some(b) = &self.body {
            req.body = Some(b.text(ctx)?.into_bytes().into());
        }
        if let Some(a) = &self.basic {
            req.headers.set("Authorization", a.compute(ctx)?);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::new(
                "InvalidUrl",
                format!("'{url}' is not an absolute http(s) URL"),
            ));
        }
        // A call-out is not routed to a backend entity: the defaults, with the certificate.
        let tls = match &self.certificate {
            Some(c) => Some(Arc::new(
                UpstreamTls::default().with_identity(c.identity(ctx, tls)?),
            )),
            None => None,
        };
        Ok(CallRequest {
            method: req.method,
            url,
            headers: req
                .headers
                .iter()
                .filter(|(n, _)| {
                    !n.eq_ignore_ascii_case("host") && !n.eq_ignore_ascii_case("content-length")
                })
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: req.body.unwrap_or_default(),
            timeout: self.timeout,
            tls,
        })
    }
}
