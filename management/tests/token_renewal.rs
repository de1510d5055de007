//! `POST /gateways/{id}/token/renew` over real sockets: a valid gateway token is
//! traded for a fresh one; expired, forged, foreign and missing tokens are refused
//! (and show in the gateway's status); an instance whose token has expired is not
//! shown healthy or connected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod client;

use client::{start_with, Client, Harness};
use portcullis_core::sync::token;
use serde_json::json;

const RENEW: &str = "/gateways/gw1/token/renew";
const DAY: u64 = 24 * 3600;

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn rfc3339_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A management plane with gateways `gw1` and `gw2`.
async fn setup() -> Harness {
    let h = start_with(|_| {}).await;
    for id in ["gw1", "gw2"] {
        let r = h
            .admin
            .put_json(
                &format!("/gateways/{id}"),
                &json!({"location": {"name": "Lab"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    h
}

/// A token for `id` with `key_type`, valid for `secs`.
async fn token_for(admin: &Client, id: &str, key_type: &str, secs: i64) -> String {
    let r = admin
        .post(
            &format!("/gateways/{id}/token"),
            Some(&json!({"keyType": key_type, "expiry": rfc3339_in(secs)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["value"].as_str().expect("value").to_owned()
}

fn expiry_of(value: &str) -> u64 {
    token::parse(value).expect("a token").expiry_unix
}

#[tokio::test]
async fn a_valid_token_is_renewed_for_thirty_days_with_the_same_key() {
    let h = setup().await;
    let addr = h.management.local_addr();
    // A short token, as in a test: 20 seconds.
    let short = token_for(&h.admin, "gw1", "primary", 20).await;
    let gateway = Client::new(addr).with_authorization(&short);
    let r = gateway.post(RENEW, Some(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let renewed = answer["value"].as_str().expect("value").to_owned();
    assert!(renewed.starts_with("GatewayKey gw1&"), "{renewed}");
    assert!(answer["expiry"].as_str().expect("expiry").ends_with('Z'));
    let expiry = expiry_of(&renewed);
    assert!(expiry > expiry_of(&short));
    let now = now_unix();
    assert!(
        (now + 30 * DAY - 5..=now + 30 * DAY + 5).contains(&expiry),
        "{expiry}"
    );
    // The renewed token is a gateway token like any other, and can be renewed too.
    let renewed_client = Client::new(addr).with_authorization(&renewed);
    let config = renewed_client.get("/gateways/gw1/configuration").await;
    assert_eq!(config.status, 200, "{}", config.text());
    assert_eq!(renewed_client.post(RENEW, None).await.status, 200);

    // Signed with the presenting token's key: a secondary-key token's renewal
    // dies when the secondary key is regenerated, and the primary's does not.
    let secondary = token_for(&h.admin, "gw1", "secondary", 3600).await;
    let r = Client::new(addr)
        .with_authorization(&secondary)
        .post(RENEW, None)
        .await;
    let from_secondary = r.json()["value"].as_str().expect("value").to_owned();
    let r = h
        .admin
        .post(
            "/gateways/gw1/regenerate-key",
            Some(&json!({"keyType": "secondary"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = Client::new(addr)
        .with_authorization(&from_secondary)
        .post(RENEW, None)
        .await
        .problem(401);
    // Told apart from a forgery, in the answer and in the status.
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("since regenerated"), "{p}");
    let status = h.admin.get("/gateways/gw1/status").await.json();
    assert_eq!(
        status["lastTokenRefusal"]["reason"], "key regenerated",
        "{status}"
    );
    assert_eq!(renewed_client.post(RENEW, None).await.status, 200);
}

#[tokio::test]
async fn expired_forged_foreign_and_missing_tokens_are_refused_and_shown() {
    let h = setup().await;
    let addr = h.management.local_addr();
    let keys = h.admin.post("/gateways/gw1/keys", None).await.json();
    let primary = keys["primary"].as_str().expect("primary").to_owned();
    let valid = token_for(&h.admin, "gw1", "primary", 3600).await;

    let expired = token::sign("gw1", now_unix() - 10, primary.as_bytes());
    let p = Client::new(addr)
        .with_authorization(&expired)
        .post(RENEW, None)
        .await
        .problem(401);
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("expired"),
        "{p}"
    );
    let forged = token::sign("gw1", now_unix() + 3600, b"not the key");
    Client::new(addr)
        .with_authorization(&forged)
        .post(RENEW, None)
        .await
        .problem(401);
    // gw2's valid token, sent for gw1; gw1's sent for gw2.
    let other = token_for(&h.admin, "gw2", "primary", 3600).await;
    Client::new(addr)
        .with_authorization(&other)
        .post(RENEW, None)
        .await
        .problem(401);
    Client::new(addr)
        .with_authorization(&valid)
        .post("/gateways/gw2/token/renew", None)
        .await
        .problem(401);
    // The admin token is no gateway token.
    h.admin.post(RENEW, None).await.problem(401);
    Client::new(addr).post(RENEW, None).await.problem(401);
    Client::new(addr)
        .with_authorization(&valid)
        .post("/gateways/nope/token/renew", None)
        .await
        .problem(401);

    // The status names the last refusal and counts them.
    let status = h.admin.get("/gateways/gw1/status").await.json();
    let refusal = &status["lastTokenRefusal"];
    assert_eq!(refusal["reason"], "no token", "{status}");
    assert_eq!(refusal["count"], 5, "{status}");
    let status = h.admin.get("/gateways/gw2/status").await.json();
    assert_eq!(
        status["lastTokenRefusal"]["reason"], "token for another gateway",
        "{status}"
    );
    // A fetch with the expired token is a refusal too, and the latest.
    Client::new(addr)
        .with_authorization(&expired)
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    let status = h.admin.get("/gateways/gw1/status").await.json();
    assert_eq!(status["lastTokenRefusal"]["reason"], "expired", "{status}");
}

#[tokio::test]
async fn an_instance_whose_token_expired_is_not_shown_healthy_or_connected() {
    let h = setup().await;
    let addr = h.management.local_addr();
    let valid = token_for(&h.admin, "gw1", "primary", 3600).await;
    let gateway = Client::new(addr).with_authorization(&valid);
    let beat = |instance: &str, token_expiry: u64| {
        json!({
            "instanceId": instance, "hostname": "edge", "version": "0.1.0",
            "appliedRevision": 1, "uptimeSeconds": 5, "health": "healthy",
            "connectivity": "connected", "tokenExpiry": token_expiry,
        })
    };
    let now = now_unix();
    // i-1 reported a token that has expired since; i-2 one good for an hour.
    for (instance, expiry) in [("i-1", now - 1), ("i-2", now + 3600)] {
        let r = gateway
            .post("/gateways/gw1/heartbeat", Some(&beat(instance, expiry)))
            .await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let status = h.admin.get("/gateways/gw1/status").await.json();
    let stale = &status["instances"][0];
    assert_eq!(stale["instanceId"], "i-1", "{status}");
    assert_eq!(stale["tokenExpired"], true);
    assert_eq!(stale["health"], "degraded");
    assert_eq!(stale["connectivity"], "disconnected");
    assert_eq!(stale["online"], false);
    assert_eq!(stale["tokenExpiry"], now - 1);
    assert!(stale["tokenExpiresAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let fine = &status["instances"][1];
    assert_eq!(fine["tokenExpired"], false, "{status}");
    assert_eq!(fine["health"], "healthy");
    assert_eq!(fine["connectivity"], "connected");
    assert_eq!(fine["online"], true);
    assert!(status["lastTokenRefusal"].is_null());
}
