//! `validate-jwt`: compiled config, signing keys (inline and from OpenID key
//! sets), and the validation decision.
//!
//! Signatures are checked with `jsonwebtoken`'s primitives only; parsing,
//! time checks (against the caller's `now_unix`, never the system clock),
//! audience, issuer and claims are done here so every failure maps to APIM's
//! reason. A key is only ever used with algorithms of its own family, which
//! rules out algorithm confusion (an RSA public key used as an HMAC secret).
//!
//! OpenID key sets: the runtime fetches each URL of `openid_urls()` (the
//! configuration document, then its `jwks_uri`) and hands the documents to
//! [`KeySets`] in its store; a request reads them as a [`KeySetsSnapshot`]
//! through a store step. Until then tokens fail with `TokenSignatureKeyNotFound`.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value as Json};

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::param::{eval_text, json_error_body, parse_seconds_or_timespan, Param, ParamValue};
use super::xml::Element;
use crate::expr::Template;
use crate::http::{Headers, Response};

/// Why key material could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// A document is not the JSON expected.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A key could not be built.
    #[error("invalid key: {0}")]
    Key(String),
}

/// Which algorithms a key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Family::Rsa,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        Algorithm::EdDSA => Family::Ed,
    }
}

/// A key that verifies signatures.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    family: Family,
    /// The only algorithm allowed, when the key says so (JWK `alg`).
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// An HMAC secret.
    pub fn hmac(kid: Option<String>, secret: &[u8]) -> Self {
        VerifyKey {
            kid,
            family: Family::Hmac,
            alg: None,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// An RSA public key from base64url modulus and exponent.
    pub fn rsa(kid: Option<String>, n: &str, e: &str) -> Result<Self, JwtError> {
        let (n, e) = (
            n.trim().trim_end_matches('='),
            e.trim().trim_end_matches('='),
        );
        let nb = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|err| JwtError::Key(format!("modulus 'n' is not base64url: {err}")))?;
        let eb = URL_SAFE_NO_PAD
            .decode(e)
            .map_err(|err| JwtError::Key(format!("exponent 'e' is not base64url: {err}")))?;
        if nb.len() < 128 || eb.is_empty() || eb.len() > 8 {
            return Err(JwtError::Key(
                "RSA modulus must be at least 1024 bits, with a sensible exponent".into(),
            ));
        }
        Ok(VerifyKey {
            kid,
            family: Family::Rsa,
            alg: None,
            key: DecodingKey::from_rsa_raw_components(&nb, &eb),
        })
    }

    /// An EC public key (P-256 or P-384) from base64url coordinates.
    pub fn ec(kid: Option<String>, crv: &str, x: &str, y: &str) -> Result<Self, JwtError> {
        let (len, alg) = match crv {
            "P-256" => (32, Algorithm::ES256),
            "P-384" => (48, Algorithm::ES384),
            other => return Err(JwtError::Key(format!("unsupported curve '{other}'"))),
        };
        let coord = |c: &str| {
            URL_SAFE_NO_PAD
                .decode(c.trim().trim_end_matches('='))
                .ok()
                .filter(|b| b.len() == len)
                .ok_or_else(|| JwtError::Key(format!("bad {crv} coordinate")))
        };
        let (xb, yb) = (coord(x)?, coord(y)?);
        // jsonwebtoken takes the point as uncompressed SEC1 bytes.
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(&xb);
        point.extend_from_slice(&yb);
        Ok(VerifyKey {
            kid,
            family: Family::Ec,
            alg: Some(alg),
            key: DecodingKey::from_ec_der(&point),
        })
    }

    /// An Ed25519 public key from its base64url bytes.
    pub fn ed25519(kid: Option<String>, x: &str) -> Result<Self, JwtError> {
        let xb = URL_SAFE_NO_PAD
            .decode(x.trim().trim_end_matches('='))
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| JwtError::Key("bad Ed25519 key".into()))?;
        Ok(VerifyKey {
            kid,
            family: Family::Ed,
            alg: Some(Algorithm::EdDSA),
            key: DecodingKey::from_ed_der(&xb),
        })
    }

    fn with_alg(mut self, alg: Option<&str>) -> Self {
        if let Some(a) = alg.and_then(|a| a.parse::<Algorithm>().ok()) {
            if family(a) == self.family {
                self.alg = Some(a);
            }
        }
        self
    }

    fn allows(&self, alg: Algorithm) -> bool {
        family(alg) == self.family && self.alg.is_none_or(|a| a == alg)
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// Keys and issuer learned from one OpenID configuration.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The signing keys of its JWKS.
    pub keys: Vec<VerifyKey>,
    /// The `issuer` of the configuration document, when known.
    pub issuer: Option<String>,
}

/// How often a token naming a key the set does not hold may make the gateway
/// fetch a configuration's key set again (APIM's and .NET's refresh on an
/// unknown signing key, at most once per 5 minutes per URL): often enough to
/// follow a provider's key rotation at once, rarely enough that made-up `kid`s
/// cannot make the gateway hammer the provider.
pub const UNKNOWN_KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// OpenID key sets by configuration URL as they were at one moment: what a
/// request validates its token against. Never changes once handed out; a
/// fetch installs a new snapshot instead.
#[derive(Debug, Default, Clone)]
pub struct KeySetsSnapshot {
    by_url: HashMap<String, Arc<KeySet>>,
}

impl KeySetsSnapshot {
    /// The key set of `url`, if fetched.
    pub fn get(&self, url: &str) -> Option<Arc<KeySet>> {
        self.by_url.get(url).cloned()
    }
}

impl PartialEq for KeySetsSnapshot {
    /// The same URLs with the very same key sets (keys compare by identity).
    fn eq(&self, other: &Self) -> bool {
        self.by_url.len() == other.by_url.len()
            && self
                .by_url
                .iter()
                .all(|(u, s)| other.by_url.get(u).is_some_and(|o| Arc::ptr_eq(s, o)))
    }
}

/// OpenID key sets by configuration URL and their refetch throttle: the
/// table the driver's store keeps (behind its lock) and replaces whole (keys
/// and issuer together) as fetches finish. Readers take a
/// [`snapshot`](Self::snapshot).
///
/// Invariants: a URL is throttled only once it has a key set; a snapshot
/// handed out is never changed (installing copies on write).
#[derive(Debug, Default)]
pub struct KeySets {
    current: Arc<KeySetsSnapshot>,
    /// When an unknown key last made each URL be fetched again.
    refreshed_for_unknown_key: HashMap<String, Instant>,
}

impl std::ops::Deref for KeySets {
    type Target = KeySetsSnapshot;

    fn deref(&self) -> &KeySetsSnapshot {
        &self.current
    }
}

impl KeySets {
    /// No key sets yet.
    pub fn new() -> Self {
        KeySets::default()
    }

    /// Installs what the configuration at `url` gave: its `issuer` and the
    /// signing keys of its JWKS document, replacing the previous set whole, so
    /// keys missing from the new document stop being accepted at once. Returns
    /// how many keys are usable (others are skipped); a document that is not a
    /// key set leaves the previous set in place.
    pub fn install(
        &mut self,
        url: &str,
        issuer: Option<String>,
        jwks: &[u8],
    ) -> Result<usize, JwtError> {
        let keys = parse_jwks(jwks)?;
        let n = keys.len();
        Arc::make_mut(&mut self.current)
            .by_url
            .insert(url.to_string(), Arc::new(KeySet { keys, issuer }));
        Ok(n)
    }

    /// The key sets as they are now.
    pub fn snapshot(&self) -> Arc<KeySetsSnapshot> {
        Arc::clone(&self.current)
    }

    /// Of `urls`, those a token with an unknown key may have fetched again at
    /// `now`: key sets already installed (before the first one arrives, the
    /// refresher's own fetch at start and its retries are what loads them) and
    /// not refetched for an unknown key in the last
    /// [`UNKNOWN_KEY_REFRESH_INTERVAL`]. They count as refetched from now on,
    /// so concurrent requests start one fetch, not many.
    pub fn claim_refresh(&mut self, urls: &[String], now: Instant) -> Vec<String> {
        let by_url = &self.current.by_url;
        let last = &mut self.refreshed_for_unknown_key;
        let mut claimed = Vec::new();
        for url in urls.iter().filter(|u| by_url.contains_key(*u)) {
            let due = last.get(url).is_none_or(|at| {
                now.saturating_duration_since(*at) >= UNKNOWN_KEY_REFRESH_INTERVAL
            });
            if due && !claimed.contains(url) {
                last.insert(url.clone(), now);
                claimed.push(url.clone());
            }
        }
        claimed
    }
}

/// Where fetched OpenID key sets go: the gateway's store (which keeps the
/// [`KeySets`] behind its lock).
pub trait KeySetSink {
    /// Installs a fetched key set (see [`KeySets::install`]).
    fn install_key_set(
        &self,
        url: &str,
        issuer: Option<String>,
        jwks: &[u8],
    ) -> Result<usize, JwtError>;
}

/// The signing keys of a JWKS document (`{"keys": [...]}`), skipping keys
/// meant for encryption and key types this gateway cannot verify with.
pub fn parse_jwks(doc: &[u8]) -> Result<Vec<VerifyKey>, JwtError> {
    let invalid = |message: String| JwtError::Invalid {
        what: "JWKS",
        message,
    };
    let v: Json = serde_json::from_slice(doc).map_err(|e| invalid(e.to_string()))?;
    let list = v
        .get("keys")
        .and_then(Json::as_array)
        .ok_or_else(|| invalid("no 'keys' array".into()))?;
    let mut out = Vec::new();
    for k in list {
        let s = |name: &str| k.get(name).and_then(Json::as_str);
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let kid = s("kid").map(str::to_string);
        let key = match s("kty") {
            Some("RSA") => match (s("n"), s("e")) {
                (Some(n), Some(e)) => VerifyKey::rsa(kid, n, e).ok(),
                _ => None,
            },
            Some("EC") => match (s("crv"), s("x"), s("y")) {
                (Some(crv), Some(x), Some(y)) => VerifyKey::ec(kid, crv, x, y).ok(),
                _ => None,
            },
            Some("OKP") if s("crv") == Some("Ed25519") => {
                s("x").and_then(|x| VerifyKey::ed25519(kid, x).ok())
            }
            Some("oct") => s("k").and_then(|k| {
                URL_SAFE_NO_PAD
                    .decode(k.trim_end_matches('='))
                    .ok()
                    .map(|b| VerifyKey::hmac(kid, &b))
            }),
            _ => None,
        };
        if let Some(key) = key {
            out.push(key.with_alg(s("alg")));
        }
    }
    Ok(out)
}

/// Where the token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A request header (`Authorization` honours `require-scheme`).
    Header(Param<String>),
    /// A query parameter.
    Query(Param<String>),
    /// An expression giving the token.
    Value(Template),
}

/// A required claim.
#[derive(Debug, Clone)]
pub struct RequiredClaim {
    /// Claim name.
    pub name: String,
    /// `all`: every value must be present; `any`: at least one.
    pub match_all: bool,
    /// Splits a string claim into several values.
    pub separator: Option<String>,
    /// Allowed values; none means the claim only has to be present.
    pub values: Vec<Template>,
}

/// Seconds, written as a number or a .NET TimeSpan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl ParamValue for Seconds {
    const EXPECTED: &'static str = "seconds or a timespan (hh:mm:ss)";
    fn parse_param(s: &str) -> Option<Self> {
        parse_seconds_or_timespan(s).map(Seconds)
    }
}

/// `<validate-jwt>`.
#[derive(Debug, Clone)]
pub struct ValidateJwt {
    /// Where the token is.
    pub source: TokenSource,
    /// Status of the failure response (default 401).
    pub failed_validation_httpcode: Param<u16>,
    /// Message of the failure response, replacing APIM's defaults.
    pub failed_validation_error_message: Option<Template>,
    /// Whether `exp` must be present (default true).
    pub require_expiration_time: Param<bool>,
    /// Scheme the `Authorization` header must use, e.g. `Bearer`.
    pub require_scheme: Option<Param<String>>,
    /// Whether unsigned tokens are refused (default true).
    pub require_signed_tokens: Param<bool>,
    /// Allowed clock difference (default 0).
    pub clock_skew: Param<Seconds>,
    /// Variable receiving the validated token.
    pub output_token_variable_name: Option<String>,
    /// OpenID configuration URLs whose keys and issuers count.
    pub openid_urls: Vec<String>,
    /// Keys written in the policy.
    pub signing_keys: Vec<VerifyKey>,
    /// Acceptable audiences (any one).
    pub audiences: Vec<Template>,
    /// Acceptable issuers (any one).
    pub issuers: Vec<Template>,
    /// Claims that must be present, with allowed values.
    pub required_claims: Vec<RequiredClaim>,
    /// What `validate-azure-ad-token` adds (`None` for `validate-jwt`).
    pub entra: Option<Box<super::azure_ad::EntraRules>>,
}

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedJwt {
    /// The token as received (without scheme).
    pub raw: String,
    /// The decoded header.
    pub header: Map<String, Json>,
    /// The decoded claims.
    pub claims: Map<String, Json>,
}

impl ValidatedJwt {
    /// APIM's `Jwt` object, as `output-token-variable-name` stores it
    /// (`((Jwt)context.Variables["name"]).Claims`, `.Subject`, ...).
    pub fn into_value(self) -> crate::expr::value::Value {
        crate::expr::value::Value::from(crate::expr::jwt::Jwt {
            header: self.header,
            claims: self.claims,
            raw: self.raw.into(),
        })
    }
}

fn no_expressions(el: &Element, name: &str) -> Result<Option<String>, PolicyError> {
    match el.attr(name) {
        Some(v) if v.trim_start().starts_with("@(") || v.trim_start().starts_with("@{") => {
            Err(PolicyError::at(
                el,
                format!("attribute '{name}' does not allow policy expressions"),
            ))
        }
        Some(v) => Ok(Some(v.trim().to_string())),
        None => Ok(None),
    }
}

fn inline_key(k: &Element) -> Result<VerifyKey, PolicyError> {
    attrs::only(k, &["n", "e", "certificate-id"])?;
    let kid = k.attr("id").map(|s| s.trim().to_string());
    if k.attr("certificate-id").is_some() {
        return Err(PolicyError::at(
            k,
            "keys given by 'certificate-id' are not supported; give the RSA key as n and e",
        ));
    }
    match (k.attr("n"), k.attr("e")) {
        (Some(n), Some(e)) => {
            VerifyKey::rsa(kid, n, e).map_err(|e| PolicyError::at(k, e.to_string()))
        }
        (None, None) => {
            let text = k.text();
            let text = text.trim();
            if text.starts_with("@(") || text.starts_with("@{") {
                return Err(PolicyError::at(k, "signing keys cannot be expressions"));
            }
            let secret = decode_base64_any(text).ok_or_else(|| {
                PolicyError::at(k, "the signing key must be base64-encoded bytes")
            })?;
            if secret.is_empty() {
                return Err(PolicyError::at(k, "the signing key is empty"));
            }
            Ok(VerifyKey::hmac(kid, &secret))
        }
        _ => Err(PolicyError::at(k, "'n' and 'e' must be given together")),
    }
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD
        .decode(s)
        .ok()
        .or_else(|| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(s.trim_end_matches('='))
                .ok()
        })
}

impl ValidateJwt {
    /// Compiles `<validate-jwt>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "header-name",
                "query-parameter-name",
                "token-value",
                "failed-validation-httpcode",
                "failed-validation-error-message",
                "require-expiration-time",
                "require-scheme",
                "require-signed-tokens",
                "clock-skew",
                "output-token-variable-name",
            ],
        )?;
        attrs::only_children(
            el,
            &[
                "openid-config",
                "issuer-signing-keys",
                "decryption-keys",
                "audiences",
                "issuers",
                "required-claims",
            ],
        )?;
        let sources = [
            el.attr("header-name").is_some(),
            el.attr("query-parameter-name").is_some(),
            el.attr("token-value").is_some(),
        ];
        if sources.iter().filter(|b| **b).count() != 1 {
            return Err(PolicyError::at(
                el,
                "exactly one of 'header-name', 'query-parameter-name' or 'token-value' is required",
            ));
        }
        let source = if let Some(p) = Param::attr(el, "header-name")? {
            TokenSource::Header(p)
        } else if let Some(p) = Param::attr(el, "query-parameter-name")? {
            TokenSource::Query(p)
        } else {
            TokenSource::Value(attrs::required_template(el, "token-value")?)
        };
        if let Some(d) = el.child("decryption-keys") {
            return Err(PolicyError::at(
                d,
                "encrypted tokens (decryption-keys) are not supported",
            ));
        }
        let mut openid_urls = Vec::new();
        for c in el.children_named("openid-config") {
            attrs::only(c, &["url", "validate-connectivity"])?;
            let url = attrs::required(c, "url")?.trim();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(PolicyError::at(c, format!("'{url}' is not an http(s) URL")));
            }
            openid_urls.push(url.to_string());
        }
        let mut signing_keys = Vec::new();
        for keys in el.children_named("issuer-signing-keys") {
            attrs::only_children(keys, &["key"])?;
            for k in keys.children_named("key") {
                signing_keys.push(inline_key(k)?);
            }
        }
        let list = |outer: &str, inner: &str| -> Result<Vec<Template>, PolicyError> {
            let mut out = Vec::new();
            for o in el.children_named(outer) {
                attrs::only_children(o, &[inner])?;
                for i in o.children_named(inner) {
                    out.push(attrs::text_template(i)?);
                }
            }
            Ok(out)
        };
        let audiences = list("audiences", "audience")?;
        let issuers = list("issuers", "issuer")?;
        let mut required_claims = Vec::new();
        for rc in el.children_named("required-claims") {
            attrs::only_children(rc, &["claim"])?;
            for c in rc.children_named("claim") {
                attrs::only(c, &["name", "match", "separator"])?;
                attrs::only_children(c, &["value"])?;
                let match_all = match c.attr("match").map(str::trim) {
                    None | Some("all") => true,
                    Some("any") => false,
                    Some(other) => {
                        return Err(PolicyError::at(
                            c,
                            format!("'match' must be all or any, not '{other}'"),
                        ))
                    }
                };
                required_claims.push(RequiredClaim {
                    name: attrs::required(c, "name")?.trim().to_string(),
                    match_all,
                    separator: c
                        .attr("separator")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    values: c
                        .children_named("value")
                        .map(attrs::text_template)
                        .collect::<Result<_, _>>()?,
                });
            }
        }
        Ok(ValidateJwt {
            source,
            failed_validation_httpcode: Param::attr_or(el, "failed-validation-httpcode", 401)?,
            failed_validation_error_message: attrs::template(
                el,
                "failed-validation-error-message",
            )?,
            require_expiration_time: Param::attr_or(el, "require-expiration-time", true)?,
            require_scheme: Param::attr(el, "require-scheme")?,
            require_signed_tokens: Param::attr_or(el, "require-signed-tokens", true)?,
            clock_skew: Param::attr_or(el, "clock-skew", Seconds(0))?,
            output_token_variable_name: no_expressions(el, "output-token-variable-name")?,
            openid_urls,
            signing_keys,
            audiences,
            issuers,
            required_claims,
            entra: None,
        })
    }

    /// The OpenID configuration URLs the runtime must fetch for this policy.
    pub fn openid_urls(&self) -> &[String] {
        &self.openid_urls
    }

    /// Whether `failure` (from [`validate`](Self::validate)) may go away once
    /// this policy's OpenID key sets are fetched again: the token names a key
    /// none of them holds, as after the provider rotated its keys.
    pub fn wants_key_refresh(&self, failure: &Failure) -> bool {
        !self.openid_urls.is_empty() && failure.reason == KEY_NOT_FOUND
    }

    /// Validates the request's token: extracts it as configured, evaluates
    /// the policy's expressions against `ctx`, checks it at `now_unix`.
    pub fn validate(
        &self,
        ctx: &Context,
        keys: &KeySetsSnapshot,
        now_unix: i64,
    ) -> Result<ValidatedJwt, Failure> {
        let fail = |e: Denial| self.failure(ctx, e);
        let token = self
            .extract(ctx)?
            .ok_or_else(|| fail(Denial::not_present()))?;
        let audiences = eval_all(&self.audiences, ctx)?;
        let mut issuers = eval_all(&self.issuers, ctx)?;
        let mut key_list: Vec<VerifyKey> = self.signing_keys.clone();
        for url in &self.openid_urls {
            if let Some(set) = keys.get(url) {
                key_list.extend(set.keys.iter().cloned());
                issuers.extend(set.issuer.iter().cloned());
            }
        }
        if self.entra.is_some() {
            let v1 = super::azure_ad::EntraRules::v1_issuers(&issuers);
            issuers.extend(v1);
        }
        let mut claims = Vec::with_capacity(self.required_claims.len());
        for c in &self.required_claims {
            claims.push((c, eval_all(&c.values, ctx)?));
        }
        let rules = Rules {
            require_expiration_time: self.require_expiration_time.resolve(ctx)?,
            require_signed_tokens: self.require_signed_tokens.resolve(ctx)?,
            clock_skew: i64::try_from(self.clock_skew.resolve(ctx)?.0).unwrap_or(i64::MAX),
            keys: &key_list,
            audiences: &audiences,
            // An OpenID configuration names its issuer: with one, the issuer is
            // always checked (as in APIM), even when the policy lists none, so
            // a token of another tenant signed with the same provider keys, or
            // one without `iss`, is refused. A configuration not fetched yet or
            // without an issuer then accepts only the listed issuers.
            check_issuer: !issuers.is_empty() || !self.openid_urls.is_empty(),
            issuers: &issuers,
            claims: &claims,
        };
        let jwt = check_token(&token, &rules, now_unix).map_err(fail)?;
        if let Some(entra) = &self.entra {
            entra.check_client(&jwt.claims, ctx).map_err(|e| match e {
                super::azure_ad::CheckError::Denied(d) => fail(d),
                super::azure_ad::CheckError::Eval(f) => f,
            })?;
        }
        Ok(jwt)
    }

    /// The token from the configured place; `None` when absent.
    pub fn extract(&self, ctx: &Context) -> Result<Option<String>, Failure> {
        let token = match &self.source {
            TokenSource::Header(name) => {
                let name = name.resolve(ctx)?;
                let Some(value) = ctx.request.headers.get(&name) else {
                    return Ok(None);
                };
                let value = value.trim();
                if !name.eq_ignore_ascii_case("authorization") {
                    // APIM ignores require-scheme for other headers.
                    value.to_string()
                } else {
                    let (scheme, rest) = match value.split_once(' ') {
                        Some((s, r)) => (Some(s), r.trim()),
                        None => (None, value),
                    };
                    match &self.require_scheme {
                        Some(req) => {
                            let req = req.resolve(ctx)?;
                            match scheme {
                                Some(s) if s.eq_ignore_ascii_case(req.trim()) => rest.to_string(),
                                _ => return Ok(None),
                            }
                        }
                        None => rest.to_string(),
                    }
                }
            }
            TokenSource::Query(name) => {
                let name = name.resolve(ctx)?;
                match ctx.request.url.query_value(&name) {
                    Some(v) => v.trim().to_string(),
                    None => return Ok(None),
                }
            }
            TokenSource::Value(t) => eval_text(t, ctx)?.trim().to_string(),
        };
        Ok(if token.is_empty() { None } else { Some(token) })
    }

    fn failure(&self, ctx: &Context, d: Denial) -> Failure {
        let status = self.failed_validation_httpcode.resolve(ctx).unwrap_or(401);
        let status = if (100..=999).contains(&status) {
            status
        } else {
            401
        };
        let body_message = match &self.failed_validation_error_message {
            Some(t) => eval_text(t, ctx).unwrap_or_default(),
            None if d.reason == "TokenNotPresent" => "JWT not present.".into(),
            None => "Invalid JWT.".into(),
        };
        let reason_phrase = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut headers = Headers::new();
        headers.append("Content-Type", "application/json");
        Failure {
            reason: d.reason.into(),
            message: d.message,
            response: Some(Box::new(Response {
                status,
                reason: reason_phrase.into(),
                headers,
                body: Some(json_error_body(status, &body_message).into()),
            })),
        }
    }
}

fn eval_all(ts: &[Template], ctx: &Context) -> Result<Vec<String>, Failure> {
    ts.iter()
        .map(|t| eval_text(t, ctx).map(|s| s.trim().to_string()))
        .collect()
}

/// APIM's reason when no key matches the token's `kid` and algorithm.
const KEY_NOT_FOUND: &str = "TokenSignatureKeyNotFound";

/// A validation failure before it becomes a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// APIM's `LastError.Reason`.
    pub reason: &'static str,
    /// `LastError.Message`.
    pub message: String,
}

impl Denial {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Denial {
            reason,
            message: message.into(),
        }
    }

    fn not_present() -> Self {
        Denial::new("TokenNotPresent", "JWT not present.")
    }
}

/// Everything `check_token` needs, resolved for one request.
pub struct Rules<'a> {
    /// Refuse tokens without `exp`.
    pub require_expiration_time: bool,
    /// Refuse `alg: none`.
    pub require_signed_tokens: bool,
    /// Allowed clock difference in seconds.
    pub clock_skew: i64,
    /// Candidate keys.
    pub keys: &'a [VerifyKey],
    /// Acceptable audiences; empty = not checked.
    pub audiences: &'a [String],
    /// Whether `iss` must be one of `issuers` (an empty list then accepts none).
    pub check_issuer: bool,
    /// Acceptable issuers.
    pub issuers: &'a [String],
    /// Required claims with their allowed values.
    pub claims: &'a [(&'a RequiredClaim, Vec<String>)],
}

fn b64_json(part: &str) -> Option<Map<String, Json>> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

/// Checks a compact JWS at `now_unix`: signature, lifetime, audience, issuer
/// and required claims, in that order (as .NET's handler APIM uses does).
pub fn check_token(token: &str, rules: &Rules<'_>, now_unix: i64) -> Result<ValidatedJwt, Denial> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 5 {
        return Err(Denial::new(
            "JwtInvalid",
            "Encrypted tokens (JWE) are not supported.",
        ));
    }
    let [h, p, sig] = parts[..] else {
        return Err(Denial::new(
            "JwtInvalid",
            "The token is not a well-formed JWT.",
        ));
    };
    let (Some(header), Some(claims)) = (b64_json(h), b64_json(p)) else {
        return Err(Denial::new(
            "JwtInvalid",
            "The token is not a well-formed JWT.",
        ));
    };
    let alg = header.get("alg").and_then(Json::as_str).unwrap_or("");
    if alg.eq_ignore_ascii_case("none") || alg.is_empty() {
        if rules.require_signed_tokens {
            return Err(Denial::new(
                "TokenSignatureInvalid",
                "The token is not signed and signed tokens are required. Access denied.",
            ));
        }
        if !sig.is_empty() {
            return Err(Denial::new(
                "JwtInvalid",
                "An unsigned token has a signature.",
            ));
        }
    } else {
        verify_signature(&header, alg, h, p, sig, rules.keys)?;
    }
    check_lifetime(&claims, rules, now_unix)?;
    if !rules.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Json::String(a)) => rules.audiences.iter().any(|x| x == a),
            Some(Json::Array(list)) => list
                .iter()
                .filter_map(Json::as_str)
                .any(|a| rules.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err(Denial::new(
                "TokenAudienceNotAllowed",
                "Audience validation failed. Access denied.",
            ));
        }
    }
    if rules.check_issuer {
        let ok = claims
            .get("iss")
            .and_then(Json::as_str)
            .is_some_and(|i| rules.issuers.iter().any(|x| x == i));
        if !ok {
            return Err(Denial::new(
                "TokenIssuerNotAllowed",
                "Issuer validation failed. Access denied.",
            ));
        }
    }
    check_claims(&claims, rules.claims)?;
    Ok(ValidatedJwt {
        raw: token.to_string(),
        header,
        claims,
    })
}

fn verify_signature(
    header: &Map<String, Json>,
    alg_name: &str,
    h: &str,
    p: &str,
    sig: &str,
    keys: &[VerifyKey],
) -> Result<(), Denial> {
    let Ok(alg) = alg_name.parse::<Algorithm>() else {
        return Err(Denial::new(
            "TokenSignatureInvalid",
            format!("Signature algorithm '{alg_name}' is not supported. Access denied."),
        ));
    };
    let kid = header.get("kid").and_then(Json::as_str);
    // Keys naming another kid are skipped; keys without an id are tried for any token.
    let candidates: Vec<&VerifyKey> = keys
        .iter()
        .filter(|k| k.allows(alg))
        .filter(|k| match (kid, k.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(Denial::new(
            KEY_NOT_FOUND,
            match kid {
                Some(k) => format!(
                    "Signature validation failed. Unable to match key: kid '{k}'. Access denied."
                ),
                None => "Signature validation failed. No key to verify it. Access denied.".into(),
            },
        ));
    }
    let message = format!("{h}.{p}");
    for k in candidates {
        // Errors (bad base64 signature, malformed key) count as a mismatch.
        if jsonwebtoken::crypto::verify(sig, message.as_bytes(), &k.key, alg).unwrap_or(false) {
            return Ok(());
        }
    }
    Err(Denial::new(
        "TokenSignatureInvalid",
        "Signature validation failed. Access denied.",
    ))
}

fn numeric_date(claims: &Map<String, Json>, name: &str) -> Result<Option<i64>, Denial> {
    match claims.get(name) {
        None | Some(Json::Null) => Ok(None),
        // NumericDate may have a fraction; whole seconds are enough here.
        Some(Json::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
            Some(t) => Ok(Some(t)),
            None => Err(Denial::new(
                "JwtInvalid",
                format!("Claim '{name}' is not a date."),
            )),
        },
        Some(_) => Err(Denial::new(
            "JwtInvalid",
            format!("Claim '{name}' is not a date."),
        )),
    }
}

fn check_lifetime(claims: &Map<String, Json>, rules: &Rules<'_>, now: i64) -> Result<(), Denial> {
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    match exp {
        None if rules.require_expiration_time => {
            return Err(Denial::new(
                "JwtInvalid",
                "Lifetime validation failed. The token is missing an Expiration Time. Access denied.",
            ))
        }
        Some(exp) if now > exp.saturating_add(rules.clock_skew) => {
            return Err(Denial::new(
                "TokenExpired",
                format!("Lifetime validation failed. The token is expired. ValidTo: '{exp}', Current time: '{now}'. Access denied."),
            ))
        }
        _ => {}
    }
    if let Some(nbf) = nbf {
        if now.saturating_add(rules.clock_skew) < nbf {
            return Err(Denial::new(
                "JwtInvalid",
                format!("Lifetime validation failed. The token is not yet valid. ValidFrom: '{nbf}', Current time: '{now}'. Access denied."),
            ));
        }
    }
    Ok(())
}

/// The claim's values as strings: array elements, or a string split by `separator`.
fn claim_values(v: &Json, separator: Option<&str>) -> Vec<String> {
    let one = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Json::Array(items) => items.iter().map(one).collect(),
        Json::String(s) => match separator {
            Some(sep) => s.split(sep).map(|x| x.trim().to_string()).collect(),
            None => vec![s.clone()],
        },
        other => vec![one(other)],
    }
}

fn check_claims(
    claims: &Map<String, Json>,
    required: &[(&RequiredClaim, Vec<String>)],
) -> Result<(), Denial> {
    let missing: Vec<&str> = required
        .iter()
        .filter(|(c, _)| claims.get(&c.name).is_none_or(Json::is_null))
        .map(|(c, _)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Denial::new(
            "TokenClaimNotFound",
            format!(
                "JWT token is missing the following claims: {}. Access denied.",
                missing.join(", ")
            ),
        ));
    }
    for (c, allowed) in required {
        if allowed.is_empty() {
            continue;
        }
        let Some(v) = claims.get(&c.name) else {
            continue;
        };
        let present = claim_values(v, c.separator.as_deref());
        let has = |a: &String| present.iter().any(|p| p == a);
        let ok = if c.match_all {
            allowed.iter().all(has)
        } else {
            allowed.iter().any(has)
        };
        if !ok {
            return Err(Denial::new(
                "TokenClaimValueNotAllowed",
                format!(
                    "Claim {} value of {} is not allowed. Access denied.",
                    c.name,
                    present.join(",")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
