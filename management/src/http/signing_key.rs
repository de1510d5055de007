//! `GET /signing-key`: the public key configuration snapshots are signed with,
//! and the signature header put on each snapshot sent.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::problem::Problem;
use super::Shared;

/// `GET /signing-key`, open to all: a public key is no secret, and a gateway
/// (or its operator) compares its fingerprint with the one the plane printed.
pub fn routes() -> Router<Shared> {
    Router::new().route("/signing-key", get(signing_key))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SigningKeyView {
    algorithm: &'static str,
    public_key: String,
    fingerprint: String,
    /// The key rotated out, while the overlap lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<KeyView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyView {
    public_key: String,
    fingerprint: String,
}

async fn signing_key(State(state): State<Shared>) -> Result<Response, Problem> {
    let key = state
        .signing_key()
        .ok_or_else(|| Problem::no_route("/signing-key"))?;
    Ok(Json(SigningKeyView {
        algorithm: "Ed25519",
        public_key: key.public_key().to_base64(),
        fingerprint: key.public_key().fingerprint(),
        previous: key.previous_public_key().map(|k| KeyView {
            public_key: k.to_base64(),
            fingerprint: k.fingerprint(),
        }),
    })
    .into_response())
}

/// Adds the signature of `body` (a snapshot, exactly as sent) to `headers`.
pub(super) fn sign(state: &Shared, headers: &mut HeaderMap, body: &[u8]) {
    if let Some(key) = state.signing_key() {
        // `ed25519=` and base64: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&key.sign_header(body)) {
            headers.insert(HeaderName::from_static("portcullis-signature"), value);
        }
        // The key next to the signature: a gateway without
        // `--management-public-key` pins it on first use (trust on first use).
        if let Ok(value) = HeaderValue::from_str(&key.public_keys_header()) {
            headers.insert(HeaderName::from_static("portcullis-signing-key"), value);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_header_name_is_the_protocols() {
        assert_eq!(
            portcullis_core::sync::signature::SIGNATURE_HEADER.to_ascii_lowercase(),
            "portcullis-signature"
        );
        assert_eq!(
            portcullis_core::sync::signature::SIGNING_KEY_HEADER.to_ascii_lowercase(),
            "portcullis-signing-key"
        );
    }
}
