//! `validate-jwt` with inline keys, tested where it is decided: the connection
//! machine driven in memory (`common::memory`) in front of a scripted
//! in-memory backend. OpenID configurations fetched from an identity provider
//! (and their key rotation) are in `decisions_openid`; the background fetch
//! over real sockets in `validate_jwt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{
    assert_apim_error, base64, cfg, inbound, mint, papi, policies, unix_now, JWT_SECRET,
    LAST_ERROR_HEADER,
};
use serde_json::json;

#[test]
fn validate_jwt_with_an_inline_hs256_key() {
    let backend = MemBackend::echo();
    let policy = policies(
        &format!(
            r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
                 <issuer-signing-keys><key>{}</key></issuer-signing-keys>
                 <audiences><audience>portcullis-tests</audience></audiences>
                 <issuers><issuer>https://issuer.test/</issuer></issuers>
               </validate-jwt>"#,
            base64(JWT_SECRET)
        ),
        "",
        "",
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let now = unix_now();
    let claims = |aud: &str, exp: u64| json!({ "sub": "user-1", "aud": aud, "iss": "https://issuer.test/", "iat": now - 10, "exp": exp });
    let good = mint(&claims("portcullis-tests", now + 3600), JWT_SECRET, None);

    let r = get_with(
        &gw,
        "/api/ok",
        &[("Authorization", &format!("Bearer {good}"))],
    );
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.target(), "/ok");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {good}")),
        "the token is forwarded"
    );

    let r = get_with(&gw, "/api/none", &[]);
    assert_apim_error(&r, 401, "JWT not present.");
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("TokenNotPresent: JWT not present.")
    );

    let forged = mint(
        &claims("portcullis-tests", now + 3600),
        b"another-secret-another-secret-0123",
        None,
    );
    let r = get_with(
        &gw,
        "/api/forged",
        &[("Authorization", &format!("Bearer {forged}"))],
    );
    // The body says only "Invalid JWT."; the reason is in context.LastError.
    assert_apim_error(&r, 401, "Invalid JWT.");
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("TokenSignatureInvalid: Signature validation failed. Access denied.")
    );

    let expired = mint(&claims("portcullis-tests", now - 600), JWT_SECRET, None);
    let r = get_with(
        &gw,
        "/api/old",
        &[("Authorization", &format!("Bearer {expired}"))],
    );
    assert_apim_error(&r, 401, "Invalid JWT.");
    let error = r.header("x-error").unwrap_or_default();
    assert!(
        error.contains("Lifetime validation failed. The token is expired."),
        "{error}"
    );

    let other_aud = mint(&claims("someone-else", now + 3600), JWT_SECRET, None);
    let r = get_with(
        &gw,
        "/api/aud",
        &[("Authorization", &format!("Bearer {other_aud}"))],
    );
    assert_apim_error(&r, 401, "Invalid JWT.");
    let error = r.header("x-error").unwrap_or_default();
    assert!(
        error.ends_with(": Audience validation failed. Access denied."),
        "{error}"
    );

    let r = get_with(
        &gw,
        "/api/scheme",
        &[("Authorization", &format!("Basic {good}"))],
    );
    assert_eq!(r.status, 401, "wrong scheme: {r:?}");
    assert!(r.has("x-error"), "{r:?}");

    assert_eq!(
        backend.requests().len(),
        1,
        "only the valid token got through"
    );
    gw.stop();
}

#[test]
fn validate_jwt_custom_status_and_claims_in_a_variable() {
    let backend = MemBackend::echo();
    let policy = inbound(&format!(
        r#"<validate-jwt query-parameter-name="token" failed-validation-httpcode="403" failed-validation-error-message="Nope" output-token-variable-name="jwt">
             <issuer-signing-keys><key>{}</key></issuer-signing-keys>
             <required-claims><claim name="role" match="any"><value>admin</value><value>ops</value></claim></required-claims>
           </validate-jwt>
           <set-header name="X-Subject" exists-action="override"><value>@(context.Request.Url.Query.GetValueOrDefault("token", "").AsJwt().Subject)</value></set-header>
           <set-header name="X-Jwt" exists-action="override"><value>@{{
               var jwt = (Jwt)context.Variables["jwt"];
               return string.Join("|", jwt.Claims.GetValueOrDefault("sub"), jwt.Subject, jwt.Issuer,
                   string.Join(",", jwt.Audiences), jwt.Id, jwt.Algorithm, jwt.Type,
                   jwt.ExpirationTime.HasValue, jwt.NotBefore.HasValue,
                   context.Variables.GetValueOrDefault<Jwt>("jwt").Claims.GetValueOrDefault("role", "-"));
           }}</value></set-header>"#,
        base64(JWT_SECRET)
    ));
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let now = unix_now();
    let admin = mint(
        &json!({ "sub": "ada", "role": "admin", "exp": now + 3600, "iss": "https://idp.example", "aud": ["api", "web"], "jti": "t-1" }),
        JWT_SECRET,
        None,
    );
    let guest = mint(
        &json!({ "sub": "gus", "role": "guest", "exp": now + 3600 }),
        JWT_SECRET,
        None,
    );

    let r = get_with(&gw, &format!("/api/x?token={admin}"), &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-subject").as_deref(),
        Some("ada")
    );
    // output-token-variable-name holds APIM's Jwt object, not the claims as JSON.
    assert_eq!(
        backend.only_request().header("x-jwt").as_deref(),
        Some("ada|ada|https://idp.example|api,web|t-1|HS256|JWT|True|False|admin")
    );

    let r = get_with(&gw, &format!("/api/x?token={guest}"), &[]);
    assert_apim_error(&r, 403, "Nope");
    let r = get_with(&gw, "/api/x", &[]);
    assert_apim_error(&r, 403, "Nope");
    assert_eq!(backend.requests().len(), 1);
    gw.stop();
}
