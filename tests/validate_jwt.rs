//! `validate-jwt` with an OpenID configuration over real sockets, on each
//! runtime: the gateway's background refresher fetches the configuration and
//! its key set from an identity provider on loopback, and tokens signed with
//! its keys are then accepted. What the gateway decides from the key sets
//! (issuers, rotation, refetch throttling) is tested in memory, in
//! `decisions_openid`; inline keys in `decisions_jwt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::policy_docs::*;
use common::*;
use serde_json::{json, Value};

/// The issuer the identity provider's configuration names.
const IDP_ISSUER: &str = "https://idp.test/";

/// Signing keys in force: `(kid, HS256 secret)`.
type Keys = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An identity provider on loopback: `/.well-known/openid-configuration` names
/// [`IDP_ISSUER`] and `/keys`, which serves the HS256 keys (`kty: oct`) the
/// test has put in force; [`rotate`](Self::rotate) replaces them.
struct IdentityProvider {
    server: Backend,
    keys: Keys,
}

impl IdentityProvider {
    async fn start(keys: &[(&str, &[u8])]) -> IdentityProvider {
        let slot: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
        let in_force: Keys = Arc::default();
        let (s, k) = (slot.clone(), in_force.clone());
        let server = Backend::start(move |r| {
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
        })
        .await;
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
}

/// `GET path` with `token` as a bearer token.
async fn get_bearer(gw: &TestGateway, path: &str, token: &str) -> Response {
    get_with(gw, path, &[("Authorization", &format!("Bearer {token}"))]).await
}

/// Polls `path` with `token` until the gateway accepts it: the key set is
/// fetched in the background at start.
async fn until_accepted(gw: &TestGateway, path: &str, token: &str) {
    within("the OpenID key set is loaded", async {
        loop {
            let r = get_bearer(gw, path, token).await;
            if r.status == 200 {
                return;
            }
            assert_eq!(r.status, 401, "{r:?} {}", r.body_str());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[runtimes]
async fn validate_jwt_with_openid_config_keys(rt: Runtime) {
    let idp = IdentityProvider::start(&[("k1", JWT_SECRET)]).await;
    let backend = Backend::echo().await;
    let policy = inbound(&format!(
        r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
             <openid-config url="{}" />
             <audiences><audience>portcullis-tests</audience></audiences>
           </validate-jwt>"#,
        idp.config_url()
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let now = unix_now();
    let claims =
        json!({ "sub": "u", "aud": "portcullis-tests", "iss": IDP_ISSUER, "exp": now + 3600 });
    let good = mint(&claims, JWT_SECRET, Some("k1"));
    until_accepted(&gw, "/api/ok", &good).await;
    let targets: Vec<String> = idp.server.requests().iter().map(|r| r.target()).collect();
    assert!(targets.contains(&"/.well-known/openid-configuration".to_owned()));
    assert!(targets.contains(&"/keys".to_owned()));

    let forged = mint(&claims, b"another-secret-another-secret-0123", Some("k1"));
    let r = get_bearer(&gw, "/api/forged", &forged).await;
    assert_eq!(r.status, 401, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/ok"]);
    gw.stop().await;
}

/// `validate-azure-ad-token`: the gateway's `--entra-authority` sends the
/// tenant's OpenID configuration fetch to a stand-in for Entra ID on
/// loopback (at Entra's path for the tenant), whose v2 issuer and keys then
/// accept the tenant's tokens for the backend application.
#[runtimes]
async fn validate_azure_ad_token_fetches_from_the_entra_authority(rt: Runtime) {
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let slot: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
    let s = slot.clone();
    let entra = Backend::start(move |r| {
        let addr = s.lock().unwrap().expect("address set");
        let target = r.target();
        let body = if target == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
            json!({
                "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                "jwks_uri": format!("http://{addr}/{TENANT}/discovery/v2.0/keys"),
            })
        } else if target == format!("/{TENANT}/discovery/v2.0/keys") {
            json!({ "keys": [{ "kty": "oct", "kid": "e1", "alg": "HS256", "k": base64url(JWT_SECRET) }] })
        } else {
            return Reply::Send(response(404, &[], b""));
        };
        Reply::Send(ok("application/json", body.to_string().as_bytes()))
    })
    .await;
    *slot.lock().unwrap() = Some(entra.addr);
    let backend = Backend::echo().await;
    let policy = inbound(&format!(
        r#"<validate-azure-ad-token tenant-id="{TENANT}">
             <backend-application-ids><application-id>orders-api</application-id></backend-application-ids>
           </validate-azure-ad-token>"#
    ));
    let authority = format!("http://{}", entra.addr);
    let gw = TestGateway::start_with(
        rt,
        &cfg(vec![papi("a", "api", backend.addr, &policy)]),
        |o| o.entra_authority = Some(authority),
    )
    .await;
    let claims = json!({
        "aud": "orders-api",
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "exp": unix_now() + 3600,
    });
    until_accepted(&gw, "/api/ok", &mint(&claims, JWT_SECRET, Some("e1"))).await;
    let other = json!({ "aud": "another-api", "iss": claims["iss"], "exp": unix_now() + 3600 });
    let r = get_bearer(&gw, "/api/other", &mint(&other, JWT_SECRET, Some("e1"))).await;
    assert_eq!(r.status, 401, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/ok"]);
    gw.stop().await;
}
