//! `validate-azure-ad-token`, decided in memory (`common::memory`): the
//! gateway's Entra authority setting (`--entra-authority`) points the tenant's
//! OpenID configuration fetch at a scripted in-memory "Entra ID", which
//! serves `/{tenant}/v2.0/.well-known/openid-configuration` naming the
//! tenant's v2 issuer, and the key set. The policy is the second corpus's
//! document (`core/tests/apim-corpus-2/validate-azure-ad-token.xml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{base64url, cfg, mint, papi, unix_now, JWT_SECRET};
use common::{ok, response, Reply, Response};
use serde_json::{json, Value};

const DOC: &str = include_str!("../core/tests/apim-corpus-2/validate-azure-ad-token.xml");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5f0c3a4e-9d2b-4c11-8a55-0d1e2f3a4b5c";
const BACKEND_APP: &str = "b6a8e1f2-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

/// A stand-in for Entra ID's public authority: the tenant's v2 OpenID
/// configuration (issuer as Entra names it) and its key set (HS256 keys, the
/// same path as Entra's RSA keys).
fn entra() -> MemBackend {
    let slot: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> =
        std::sync::Arc::default();
    let s = slot.clone();
    let server = MemBackend::start(move |r| {
        let addr = s.lock().unwrap().expect("address set");
        let target = r.target();
        let body = if target == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
            json!({
                "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                "jwks_uri": format!("http://{addr}/{TENANT}/discovery/v2.0/keys"),
            })
        } else if target == format!("/{TENANT}/discovery/v2.0/keys") {
            json!({ "keys": [{ "kty": "oct", "kid": "entra-1", "alg": "HS256", "use": "sig", "k": base64url(JWT_SECRET) }] })
        } else {
            return Reply::Send(response(404, &[], b""));
        };
        Reply::Send(ok("application/json", body.to_string().as_bytes()))
    });
    *slot.lock().unwrap() = Some(server.addr);
    server
}

fn bearer(gw: &MemGateway, token: &str) -> Response {
    get_with(
        gw,
        "/orders/42",
        &[("Authorization", &format!("Bearer {token}"))],
    )
}

fn claims(extra: Value) -> Value {
    let mut c = json!({ "exp": unix_now() + 3600, "nbf": unix_now() - 10 });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// The corpus document accepts the tenant's v2 and v1 tokens for the backend
/// application from the listed client with a listed role, and refuses the
/// rest with the policy's status and message; the configuration was fetched
/// from the gateway's authority at Entra's path for the tenant.
#[test]
fn validate_azure_ad_token_checks_tenant_client_audience_and_claims() {
    let idp = entra();
    let backend = MemBackend::echo();
    let gw = MemGateway::start_with(
        &cfg(vec![papi("orders", "orders", backend.addr, DOC)]),
        |o| o.entra_authority = Some(format!("http://{}", idp.addr)),
    );
    let v2_iss = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    let v1_iss = format!("https://sts.windows.net/{TENANT}/");
    let token = |c: Value| mint(&claims(c), JWT_SECRET, Some("entra-1"));

    let v2 = token(
        json!({ "iss": v2_iss, "aud": BACKEND_APP, "azp": CLIENT, "roles": ["Orders.Read"] }),
    );
    let r = bearer(&gw, &v2);
    assert_eq!(r.status, 200, "a v2 token: {r:?} {}", r.body_str());
    let v1 = token(
        json!({ "iss": v1_iss, "aud": format!("api://{BACKEND_APP}"), "appid": CLIENT, "roles": ["Orders.ReadWrite"] }),
    );
    let r = bearer(&gw, &v1);
    assert_eq!(r.status, 200, "a v1 token: {r:?} {}", r.body_str());

    for (what, c, reason) in [
        (
            "another client application",
            json!({ "iss": v2_iss, "aud": BACKEND_APP, "azp": "someone-else", "roles": ["Orders.Read"] }),
            "TokenClaimValueNotAllowed",
        ),
        (
            "another tenant",
            json!({ "iss": "https://login.microsoftonline.com/other-tenant/v2.0", "aud": BACKEND_APP, "azp": CLIENT, "roles": ["Orders.Read"] }),
            "TokenIssuerNotAllowed",
        ),
        (
            "another audience",
            json!({ "iss": v2_iss, "aud": "some-other-api", "azp": CLIENT, "roles": ["Orders.Read"] }),
            "TokenAudienceNotAllowed",
        ),
        (
            "no role",
            json!({ "iss": v2_iss, "aud": BACKEND_APP, "azp": CLIENT }),
            "TokenClaimNotFound",
        ),
    ] {
        let r = bearer(&gw, &token(c));
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(r.header("x-error").as_deref(), Some(reason), "{what}");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({ "statusCode": 401, "message": "Access token is missing or invalid." }),
            "{what}"
        );
    }
    let r = get_with(&gw, "/orders/42", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error").as_deref(), Some("TokenNotPresent"));

    let asked: Vec<String> = idp.requests().iter().map(|r| r.target()).collect();
    assert_eq!(
        asked,
        vec![
            format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
            format!("/{TENANT}/discovery/v2.0/keys"),
        ],
        "one fetch, at the tenant's configuration on the gateway's authority"
    );
    assert_eq!(backend.requests().len(), 2, "only accepted tokens went on");
}
