//! `validate-jwt` with OpenID configurations, decided in memory
//! (`common::memory`): the identity provider is a scripted in-memory backend
//! the driver's own key set fetch (`jwks::key_sets`) reaches through the
//! in-memory call-out client, so the test says what it serves and reads
//! what it was asked. The issuer it names is enforced (as APIM does, with or
//! without `<issuers>`), and its key rotation followed (a token naming an
//! unknown key makes the gateway fetch the key set again, at most once per 5
//! minutes per configuration, on the harness's clock). The background fetch
//! over real sockets on each runtime stays in `validate_jwt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::memory::*;
use common::policy_docs::{
    base64url, cfg, mint, papi, policies, unix_now, JWT_SECRET, LAST_ERROR_HEADER,
};
use common::{ok, response, Reply, Response};
use serde_json::{json, Value};

/// The issuer the identity provider's configuration names.
const IDP_ISSUER: &str = "https://idp.test/";

/// Signing keys in force: `(kid, HS256 secret)`.
type Keys = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An identity provider on loopback: `/.well-known/openid-configuration` names
/// [`IDP_ISSUER`] and `/keys`, which serves the HS256 keys (`kty: oct`) the
/// test has put in force; [`rotate`](Self::rotate) replaces them.
struct IdentityProvider {
    server: MemBackend,
    keys: Keys,
}

impl IdentityProvider {
    fn start(keys: &[(&str, &[u8])]) -> IdentityProvider {
        let slot: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
        let in_force: Keys = Arc::default();
        let (s, k) = (slot.clone(), in_force.clone());
        let server = MemBackend::start(move |r| {
            let addr = s.lock().unwrap().expect("idp address set");
            let body = match r.target().as_str() {
                "/.well-known/openid-configuration" => json!({
                    "issuer": IDP_ISSUER,
                    "jwks_uri": format!("http://{addr}/keys"),
                }),
                "/keys" => {
                    let keys: Vec<Value> = k
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(kid, secret)| json!({ "kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": base64url(secret) }))
                        .collect();
                    json!({ "keys": keys })
                }
                _ => return Reply::Send(response(404, &[], b"")),
            };
            Reply::Send(ok("application/json", body.to_string().as_bytes()))
        });
        *slot.lock().unwrap() = Some(server.addr);
        let idp = IdentityProvider {
            server,
            keys: in_force,
        };
        idp.rotate(keys);
        idp
    }

    /// Puts these keys in force, and only these.
    fn rotate(&self, keys: &[(&str, &[u8])]) {
        *self.keys.lock().unwrap() = keys
            .iter()
            .map(|(kid, secret)| ((*kid).to_owned(), secret.to_vec()))
            .collect();
    }

    fn config_url(&self) -> String {
        format!(
            "http://{}/.well-known/openid-configuration",
            self.server.addr
        )
    }

    /// How often the key set was fetched.
    fn key_fetches(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.target() == "/keys")
            .count()
    }
}

/// API `id` at `/{id}` in front of `backend`, its inbound `validate-jwt`
/// policy reporting `context.LastError` in `X-Error` when it refuses.
fn jwt_api(id: &str, backend: &MemBackend, validate_jwt: &str) -> Value {
    papi(
        id,
        id,
        backend.addr,
        &policies(validate_jwt, "", "", LAST_ERROR_HEADER),
    )
}

/// `GET path` with `token` as a bearer token.
fn get_bearer(gw: &MemGateway, path: &str, token: &str) -> Response {
    get_with(gw, path, &[("Authorization", &format!("Bearer {token}"))])
}

/// Asserts the gateway accepts `token` on `path`: the key set was fetched
/// at start, as the refresher's first round does.
fn until_accepted(gw: &MemGateway, path: &str, token: &str) {
    let r = get_bearer(gw, path, token);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
}

/// Asserts `r` is a 401 whose `context.LastError.Reason` is `reason`.
fn assert_refused(r: &Response, reason: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: {r:?} {}", r.body_str());
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with(&format!("{reason}: ")), "{what}: {error}");
}

/// The issuer an OpenID configuration names is enforced as APIM enforces it:
/// tokens signed with the provider's keys but issued by someone else (another
/// Entra ID tenant shares the keys), or by nobody, are refused, with or
/// without `<audiences>`, `<issuers>` or `require-expiration-time="false"`.
#[test]
fn validate_jwt_enforces_the_openid_configuration_issuer() {
    let idp = IdentityProvider::start(&[("k1", JWT_SECRET)]);
    let backend = MemBackend::echo();
    let config = format!(r#"<openid-config url="{}" />"#, idp.config_url());
    let apis = vec![
        jwt_api(
            "only",
            &backend,
            &format!(r#"<validate-jwt header-name="Authorization">{config}</validate-jwt>"#),
        ),
        jwt_api(
            "aud",
            &backend,
            &format!(
                r#"<validate-jwt header-name="Authorization">{config}
                     <audiences><audience>portcullis-tests</audience></audiences></validate-jwt>"#
            ),
        ),
        jwt_api(
            "noexp",
            &backend,
            &format!(
                r#"<validate-jwt header-name="Authorization" require-expiration-time="false">{config}</validate-jwt>"#
            ),
        ),
        jwt_api(
            "listed",
            &backend,
            &format!(
                r#"<validate-jwt header-name="Authorization">{config}
                     <issuers><issuer>https://partner.test/</issuer></issuers></validate-jwt>"#
            ),
        ),
    ];
    let gw = MemGateway::start(&cfg(apis));
    let exp = unix_now() + 3600;
    let token = |claims: Value| mint(&claims, JWT_SECRET, Some("k1"));
    let ours = token(json!({ "aud": "portcullis-tests", "iss": IDP_ISSUER, "exp": exp }));
    let other = token(
        json!({ "aud": "portcullis-tests", "iss": "https://other-tenant.test/", "exp": exp }),
    );
    let no_iss = token(json!({ "aud": "portcullis-tests", "exp": exp }));
    let other_no_exp =
        token(json!({ "aud": "portcullis-tests", "iss": "https://other-tenant.test/" }));
    let partner = token(json!({ "iss": "https://partner.test/", "exp": exp }));
    until_accepted(&gw, "/only/ours", &ours);

    for (path, token, status, what) in [
        (
            "/aud/ours",
            &ours,
            200,
            "the configuration's issuer, right audience",
        ),
        (
            "/listed/ours",
            &ours,
            200,
            "the configuration's issuer next to listed ones",
        ),
        ("/listed/partner", &partner, 200, "a listed issuer"),
        ("/only/other", &other, 401, "another issuer"),
        ("/only/no-iss", &no_iss, 401, "no issuer"),
        (
            "/aud/other",
            &other,
            401,
            "another issuer with the right audience",
        ),
        (
            "/noexp/other",
            &other_no_exp,
            401,
            "another issuer, no exp, exp not required",
        ),
        (
            "/listed/other",
            &other,
            401,
            "an issuer neither listed nor configured",
        ),
    ] {
        let r = get_bearer(&gw, path, token);
        if status == 200 {
            assert_eq!(r.status, 200, "{what}: {r:?} {}", r.body_str());
        } else {
            assert_refused(&r, "TokenIssuerNotAllowed", what);
        }
    }
    let mut reached: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    reached.sort();
    // The backend sees paths without the API's prefix.
    assert_eq!(reached, ["/ours", "/ours", "/ours", "/partner"]);
    gw.stop();
}

/// The provider rotates its signing key: the first token signed with the new
/// key is accepted at once (its unknown `kid` makes the gateway fetch the key
/// set again), the retired key stops being accepted, and unknown keys do not
/// make the gateway fetch again within 5 minutes.
#[test]
fn validate_jwt_follows_signing_key_rotation() {
    const K2: &[u8] = b"the-second-signing-key-0123456789abcdef";
    const K3: &[u8] = b"the-third-signing-key-0123456789abcdefg";
    let idp = IdentityProvider::start(&[("k1", JWT_SECRET)]);
    let backend = MemBackend::echo();
    let api = jwt_api(
        "api",
        &backend,
        &format!(
            r#"<validate-jwt header-name="Authorization"><openid-config url="{}" /></validate-jwt>"#,
            idp.config_url()
        ),
    );
    let gw = MemGateway::start(&cfg(vec![api]));
    let claims = json!({ "sub": "u", "iss": IDP_ISSUER, "exp": unix_now() + 3600 });
    let with_k1 = mint(&claims, JWT_SECRET, Some("k1"));
    until_accepted(&gw, "/api/k1", &with_k1);
    let fetched = idp.key_fetches();

    idp.rotate(&[("k2", K2)]);
    let with_k2 = mint(&claims, K2, Some("k2"));
    let r = get_bearer(&gw, "/api/k2", &with_k2);
    assert_eq!(r.status, 200, "the new key at once: {r:?} {}", r.body_str());
    assert_eq!(idp.key_fetches(), fetched + 1, "fetched again once");

    let r = get_bearer(&gw, "/api/k1-retired", &with_k1);
    assert_refused(&r, "TokenSignatureKeyNotFound", "the retired key");
    let made_up = mint(&claims, K2, Some("k-made-up"));
    let r = get_bearer(&gw, "/api/made-up", &made_up);
    assert_refused(&r, "TokenSignatureKeyNotFound", "a made-up key id");
    // A second rotation within 5 minutes is not followed on demand.
    idp.rotate(&[("k3", K3)]);
    let r = get_bearer(&gw, "/api/k3", &mint(&claims, K3, Some("k3")));
    assert_refused(
        &r,
        "TokenSignatureKeyNotFound",
        "a key from a second rotation",
    );
    assert_eq!(
        idp.key_fetches(),
        fetched + 1,
        "at most one fetch per 5 minutes for unknown keys"
    );
    let r = get_bearer(&gw, "/api/k2-again", &with_k2);
    assert_eq!(r.status, 200, "{r:?}");

    let mut reached: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    reached.sort();
    assert_eq!(reached, ["/k1", "/k2", "/k2-again"]);

    // Five minutes later an unknown key may make the gateway fetch again: the
    // second rotation is followed (time is the harness's clock).
    gw.advance(std::time::Duration::from_secs(5 * 60 + 1));
    let r = get_bearer(&gw, "/api/k3-later", &mint(&claims, K3, Some("k3")));
    assert_eq!(r.status, 200, "the third key after 5 minutes: {r:?}");
    assert_eq!(
        idp.key_fetches(),
        fetched + 2,
        "fetched again after 5 minutes"
    );
    let r = get_bearer(&gw, "/api/k2-retired", &with_k2);
    assert_refused(&r, "TokenSignatureKeyNotFound", "the second key, retired");
    gw.stop();
}

#[test]
fn the_key_set_fetch_asks_the_configuration_then_its_key_set() {
    // What the gateway sends the identity provider, exactly as fetched at
    // start: the configuration, then the `jwks_uri` it names.
    let idp = IdentityProvider::start(&[("k1", JWT_SECRET)]);
    let backend = MemBackend::echo();
    let api = jwt_api(
        "api",
        &backend,
        &format!(
            r#"<validate-jwt header-name="Authorization"><openid-config url="{}" /></validate-jwt>"#,
            idp.config_url()
        ),
    );
    let gw = MemGateway::start(&cfg(vec![api]));
    let sent = idp.server.requests();
    let targets: Vec<String> = sent.iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/.well-known/openid-configuration", "/keys"]);
    for r in &sent {
        assert_eq!(r.method(), "GET");
        assert!(r.body.is_empty());
        assert_eq!(r.header("host"), Some(idp.server.addr.to_string()));
    }
    // Without a token nothing is fetched again.
    let r = get_with(&gw, "/api/none", &[]);
    assert_refused(&r, "TokenNotPresent", "no token");
    assert_eq!(idp.server.requests().len(), 2);
    gw.stop();
}

#[test]
fn an_unreachable_identity_provider_refuses_tokens() {
    // The configuration URL names nothing: the fetch fails, no key is
    // installed, and a token is refused for want of its key.
    let backend = MemBackend::echo();
    let url = format!("http://{}/.well-known/openid-configuration", closed_port());
    let api = jwt_api(
        "api",
        &backend,
        &format!(
            r#"<validate-jwt header-name="Authorization"><openid-config url="{url}" /></validate-jwt>"#
        ),
    );
    let gw = MemGateway::start(&cfg(vec![api]));
    let claims = json!({ "sub": "u", "iss": IDP_ISSUER, "exp": unix_now() + 3600 });
    let r = get_bearer(&gw, "/api/x", &mint(&claims, JWT_SECRET, Some("k1")));
    assert_eq!(r.status, 401, "{r:?} {}", r.body_str());
    assert!(backend.requests().is_empty());
    gw.stop();
}
