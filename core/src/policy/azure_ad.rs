//! `validate-azure-ad-token`: `validate-jwt` with Microsoft Entra ID's OpenID
//! configuration for the tenant.
//!
//! The policy compiles to a [`ValidateJwt`] whose only OpenID source is
//! `{authority}/{tenant}/v2.0/.well-known/openid-configuration` (the authority
//! is `https://login.microsoftonline.com` unless `authentication-endpoint`
//! names a national cloud; the driver may send the fetch to another base URL,
//! its `--entra-authority` setting). The key set, the v2 issuer and, derived
//! from it, the tenant's v1 issuer come from that configuration through the
//! usual key-set fetch. What Entra adds to `validate-jwt` is
//! [`EntraRules`]: the client application (`azp`, or `appid` in v1 tokens).

use serde_json::{Map, Value as Json};

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::jwt::{Denial, ValidateJwt};
use super::param::eval_text;
use super::xml::{Attr, Element, Node};
use crate::expr::Template;

/// Microsoft Entra ID's public authority: the base of the OpenID
/// configuration URL a `validate-azure-ad-token` compiles to.
pub const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Where Entra ID's v1 tokens say they come from (`iss`), before the tenant id.
const V1_ISSUER_BASE: &str = "https://sts.windows.net/";

/// The checks Entra ID adds to `validate-jwt`.
#[derive(Debug, Clone)]
pub struct EntraRules {
    /// `client-application-ids`: the token's `azp` (v2) or `appid` (v1) must
    /// be one of them; empty: not checked.
    pub client_application_ids: Vec<Template>,
}

impl EntraRules {
    /// The tenant's v1 issuers for the v2 issuers its configuration named
    /// (`{authority}/{tenant-guid}/v2.0` → `https://sts.windows.net/{tenant-guid}/`):
    /// a tenant given by domain name is only known by its id once the
    /// configuration answered.
    pub fn v1_issuers(config_issuers: &[String]) -> Vec<String> {
        config_issuers
            .iter()
            .filter_map(|iss| {
                let rest = iss.trim_end_matches('/').strip_suffix("/v2.0")?;
                let tenant = rest.rsplit('/').next()?;
                (!tenant.is_empty()).then(|| format!("{V1_ISSUER_BASE}{tenant}/"))
            })
            .collect()
    }

    /// Checks the client application of a token that passed `validate-jwt`'s checks.
    pub fn check_client(
        &self,
        claims: &Map<String, Json>,
        ctx: &Context,
    ) -> Result<(), CheckError> {
        if self.client_application_ids.is_empty() {
            return Ok(());
        }
        let mut allowed = Vec::with_capacity(self.client_application_ids.len());
        for t in &self.client_application_ids {
            allowed.push(
                eval_text(t, ctx)
                    .map_err(CheckError::Eval)?
                    .trim()
                    .to_string(),
            );
        }
        let client = ["azp", "appid"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Json::as_str));
        match client {
            Some(id) if allowed.iter().any(|a| a.eq_ignore_ascii_case(id)) => Ok(()),
            Some(id) => Err(CheckError::Denied(Denial {
                reason: "TokenClaimValueNotAllowed",
                message: format!(
                    "Client application '{id}' is not one of the client-application-ids. Access denied."
                ),
            })),
            None => Err(CheckError::Denied(Denial {
                reason: "TokenClaimNotFound",
                message: "JWT token is missing the following claims: azp or appid. Access denied."
                    .into(),
            })),
        }
    }
}

/// Why [`EntraRules::check_client`] refused.
#[derive(Debug)]
pub enum CheckError {
    /// The token is refused (the policy's failure response).
    Denied(Denial),
    /// An expression failed.
    Eval(Failure),
}

/// The tenant from `tenant-id`: an id, a domain name, or a URL naming one.
fn tenant(el: &Element) -> Result<String, PolicyError> {
    let raw = attrs::required(el, "tenant-id")?.trim();
    if raw.starts_with("@(") || raw.starts_with("@{") {
        return Err(PolicyError::at(
            el,
            "attribute 'tenant-id' does not allow policy expressions (the tenant's keys are fetched ahead of requests)",
        ));
    }
    let t = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .unwrap_or(raw)
        .trim_end_matches('/');
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(PolicyError::at(
            el,
            format!("tenant-id '{raw}' is not a tenant id, domain name or tenant URL"),
        ));
    }
    Ok(t.to_string())
}

/// The authority: `authentication-endpoint`, else Entra ID's public cloud.
fn authority(el: &Element) -> Result<String, PolicyError> {
    match el.attr("authentication-endpoint").map(str::trim) {
        None => Ok(ENTRA_AUTHORITY.to_string()),
        Some(a) if a.starts_with("https://") && a.len() > "https://".len() => {
            Ok(a.trim_end_matches('/').to_string())
        }
        Some(a) => Err(PolicyError::at(
            el,
            format!("authentication-endpoint '{a}' is not an https:// URL"),
        )),
    }
}

/// The `application-id`s of `el`'s child `outer`.
fn application_ids(el: &Element, outer: &str) -> Result<Vec<Template>, PolicyError> {
    let mut out = Vec::new();
    for o in el.children_named(outer) {
        attrs::only(o, &[])?;
        attrs::only_children(o, &["application-id"])?;
        for i in o.children_named("application-id") {
            attrs::only(i, &[])?;
            out.push(attrs::text_template(i)?);
        }
    }
    Ok(out)
}

fn literal(s: &str) -> Result<Template, PolicyError> {
    Template::compile(s).map_err(|e| PolicyError {
        pos: Default::default(),
        policy: "validate-azure-ad-token".into(),
        message: e.message,
    })
}

/// Compiles `<validate-azure-ad-token>` into the `validate-jwt` it is.
pub fn compile(el: &Element) -> Result<ValidateJwt, PolicyError> {
    attrs::only(
        el,
        &[
            "tenant-id",
            "header-name",
            "query-parameter-name",
            "token-value",
            "authentication-endpoint",
            "failed-validation-httpcode",
            "failed-validation-error-message",
            "output-token-variable-name",
        ],
    )?;
    attrs::only_children(
        el,
        &[
            "client-application-ids",
            "backend-application-ids",
            "audiences",
            "required-claims",
            "decryption-keys",
        ],
    )?;
    let tenant = tenant(el)?;
    let authority = authority(el)?;
    let clients = application_ids(el, "client-application-ids")?;
    let backends = application_ids(el, "backend-application-ids")?;
    // The rest is validate-jwt's own: its attributes, audiences, claims.
    let mut as_jwt = Element {
        name: "validate-jwt".into(),
        attrs: el
            .attrs
            .iter()
            .filter(|a| a.name != "tenant-id" && a.name != "authentication-endpoint")
            .cloned()
            .collect(),
        children: el
            .children
            .iter()
            .filter(|n| match n {
                Node::Element(c) => {
                    c.name != "client-application-ids" && c.name != "backend-application-ids"
                }
                Node::Text(_) => true,
            })
            .cloned()
            .collect(),
        pos: el.pos,
        read: Default::default(),
    };
    let has_source = ["header-name", "query-parameter-name", "token-value"]
        .iter()
        .any(|a| el.attr(a).is_some());
    if !has_source {
        // APIM's default: the Authorization header (its scheme is dropped).
        as_jwt.attrs.push(Attr {
            name: "header-name".into(),
            value: "Authorization".into(),
        });
    }
    let rename = |mut e: PolicyError| {
        if e.policy == "validate-jwt" {
            e.policy = el.name.clone();
        }
        e
    };
    let mut jwt = ValidateJwt::from_element(&as_jwt).map_err(rename)?;
    // validate-jwt read the copies of the children: an unknown one is refused
    // there, and the originals count as read.
    super::attrs::no_unread_children(&as_jwt).map_err(rename)?;
    el.mark_all_read();
    jwt.openid_urls = vec![format!(
        "{authority}/{tenant}/v2.0/.well-known/openid-configuration"
    )];
    // The tenant's issuers when it is given by id; by domain name they come
    // from the configuration (see `EntraRules::v1_issuers`).
    jwt.issuers
        .push(literal(&format!("{authority}/{tenant}/v2.0"))?);
    jwt.issuers
        .push(literal(&format!("{V1_ISSUER_BASE}{tenant}/"))?);
    // A backend application is the audience by its id (v2) or its
    // application id URI `api://{id}` (v1).
    for b in backends {
        if let Some(id) = b.literal().map(str::to_string) {
            jwt.audiences.push(literal(&format!("api://{id}"))?);
        }
        jwt.audiences.push(b);
    }
    jwt.entra = Some(Box::new(EntraRules {
        client_application_ids: clients,
    }));
    Ok(jwt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    fn compile_src(src: &str) -> Result<ValidateJwt, PolicyError> {
        compile(&xml::parse(src).unwrap())
    }

    #[test]
    fn tenant_maps_to_entra_configuration_and_issuers() {
        let p = compile_src(
            r#"<validate-azure-ad-token tenant-id="contoso.onmicrosoft.com">
                 <client-application-ids><application-id>c1</application-id></client-application-ids>
                 <backend-application-ids><application-id>b1</application-id></backend-application-ids>
               </validate-azure-ad-token>"#,
        )
        .unwrap();
        assert_eq!(
            p.openid_urls(),
            &["https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration".to_string()]
        );
        let aud: Vec<_> = p.audiences.iter().filter_map(|t| t.literal()).collect();
        assert_eq!(aud, vec!["api://b1", "b1"]);
        assert_eq!(p.entra.as_ref().unwrap().client_application_ids.len(), 1);
        assert!(matches!(
            &p.source,
            super::super::jwt::TokenSource::Header(_)
        ));
    }

    #[test]
    fn v1_issuer_is_derived_from_the_configuration() {
        assert_eq!(
            EntraRules::v1_issuers(&[
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
                    .into()
            ]),
            vec!["https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/".to_string()]
        );
    }

    #[test]
    fn bad_input_names_the_policy() {
        let e = compile_src(r#"<validate-azure-ad-token />"#).unwrap_err();
        assert!(e.message.contains("tenant-id"), "{e:?}");
        let e = compile_src(r#"<validate-azure-ad-token tenant-id="a b" />"#).unwrap_err();
        assert!(e.message.contains("not a tenant id"), "{e:?}");
        let e = compile_src(
            r#"<validate-azure-ad-token tenant-id="t" header-name="A" token-value="x" />"#,
        )
        .unwrap_err();
        assert_eq!(e.policy, "validate-azure-ad-token");
        let e = compile_src(
            r#"<validate-azure-ad-token tenant-id="t"><frob/></validate-azure-ad-token>"#,
        )
        .unwrap_err();
        assert!(e.message.contains("frob"), "{e:?}");
    }
}
