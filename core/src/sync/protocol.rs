//! The HTTP side of the sync protocol: the requests a gateway makes to the
//! management plane and what their responses mean to the agent. The adapter only
//! performs them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use super::credential::TokenValidity;
use super::credential::{TokenSource, TokenState};

use super::agent::FetchResult;
use super::content::ContentId;
use super::heartbeat::Heartbeat;
use super::token::{self, TokenError, SCHEME};
use crate::callout::{CalloutError, CalloutRequest, CalloutTarget};
use crate::config::Scheme;
use crate::expr::encoding::uri_escape;
use crate::http::Response;

/// The most of an error body kept for a log line or a heartbeat.
const MAX_DETAIL: usize = 300;

/// Why a management endpoint could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The management URL is not a usable `http://` or `https://` URL.
    #[error("invalid management URL `{url}`: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        source: CalloutError,
    },
    /// The token cannot be read.
    #[error("invalid gateway token: {0}")]
    Token(TokenError),
}

/// Where and as whom a gateway talks to the management plane. Clones share one
/// [`TokenSource`]: the driver puts its renewable credential there (see
/// [`with_token_source`](Self::with_token_source)), so a renewed token reaches
/// every user of the endpoint.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    gateway_id: String,
    token: Arc<dyn TokenSource>,
    /// Plain `http://` to a host that may be another machine.
    cleartext_remote: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("gateway_id", &self.gateway_id)
            .field("expiry_unix", &self.token_expiry_unix())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
            && self.gateway_id == other.gateway_id
            && self.authorization() == other.authorization()
    }
}

impl Eq for Endpoint {}

impl Endpoint {
    /// The management plane at `base_url` (e.g. `https://mgmt:8443`, a path prefix
    /// allowed), with the gateway token `token` (the gateway id comes from it; the
    /// `GatewayKey ` prefix is optional).
    pub fn new(base_url: &str, token: &str) -> Result<Endpoint, EndpointError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let target = CalloutTarget::parse(&base).map_err(|source| EndpointError::Url {
            url: base_url.to_owned(),
            source,
        })?;
        let cleartext_remote =
            target.service.scheme == Scheme::Http && !target.service.is_loopback();
        let parsed = token::parse(token).map_err(EndpointError::Token)?;
        let body = token.trim();
        let body = match body.split_once(' ') {
            Some((_, rest)) => rest.trim_start(),
            None => body,
        };
        Ok(Endpoint {
            gateway_id: parsed.gateway_id.to_owned(),
            token: Arc::new(TokenState::new(
                format!("{SCHEME} {body}"),
                parsed.expiry_unix,
            )),
            base,
            cleartext_remote,
        })
    }

    /// Whether the management URL is plain `http://` to a host that is not
    /// certainly this machine (see [`is_loopback_host`](crate::config::is_loopback_host)):
    /// snapshots, with their subscription keys and secret named values, and the
    /// gateway token then cross the network unencrypted.
    pub fn is_cleartext_remote(&self) -> bool {
        self.cleartext_remote
    }

    /// The gateway id the token is for.
    pub fn gateway_id(&self) -> &str {
        &self.gateway_id
    }

    /// When the token in use expires, Unix seconds.
    pub fn token_expiry_unix(&self) -> u64 {
        self.token.expiry_unix()
    }

    /// This endpoint with its requests taking the token from `source` (shared
    /// by every clone made from then on), e.g. the driver's renewable credential.
    pub fn with_token_source(mut self, source: Arc<dyn TokenSource>) -> Endpoint {
        self.token = source;
        self
    }

    /// The `Authorization` header value to send now.
    pub fn authorization(&self) -> String {
        self.token.authorization()
    }

    /// Whether the token is still good at `now_unix` (Unix seconds), for the
    /// warning a gateway logs at start.
    pub fn token_validity(&self, now_unix: u64) -> TokenValidity {
        TokenValidity::at(self.token_expiry_unix(), now_unix)
    }

    /// The management URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET {base}/gateways/{id}/configuration[?wait=N]`.
    pub fn configuration_url(&self, wait: Option<Duration>) -> String {
        let mut url = format!(
            "{}/gateways/{}/configuration",
            self.base,
            uri_escape(&self.gateway_id)
        );
        if let Some(wait) = wait {
            url.push_str(&format!("?wait={}", wait.as_secs().max(1)));
        }
        url
    }

    /// `POST {base}/gateways/{id}/heartbeat`.
    pub fn heartbeat_url(&self) -> String {
        format!(
            "{}/gateways/{}/heartbeat",
            self.base,
            uri_escape(&self.gateway_id)
        )
    }

    /// `POST {base}/gateways/{id}/telemetry`.
    pub fn telemetry_url(&self) -> String {
        format!(
            "{}/gateways/{}/telemetry",
            self.base,
            uri_escape(&self.gateway_id)
        )
    }

    /// The upload of one telemetry batch (its JSON bytes).
    pub fn telemetry_request(&self, batch: Bytes, timeout: Duration) -> CalloutRequest {
        CalloutRequest {
            method: "POST".into(),
            url: self.telemetry_url(),
            headers: vec![
                ("Authorization".into(), self.authorization()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: batch,
            timeout,
        }
    }

    /// The configuration fetch the agent asked for.
    pub fn fetch_request(
        &self,
        if_none_match: Option<&ContentId>,
        wait: Option<Duration>,
        timeout: Duration,
    ) -> CalloutRequest {
        let mut req = CalloutRequest::get(self.configuration_url(wait), timeout);
        req.headers
            .push(("Authorization".into(), self.authorization()));
        req.headers
            .push(("Accept".into(), "application/json".into()));
        // The ETag names content (revision and digest), not just a revision: a
        // restored store at the same revision with other content must answer 200.
        if let Some(id) = if_none_match {
            req.headers.push(("If-None-Match".into(), id.etag()));
        }
        req
    }

    /// The heartbeat POST.
    pub fn heartbeat_request(&self, heartbeat: &Heartbeat, timeout: Duration) -> CalloutRequest {
        CalloutRequest {
            method: "POST".into(),
            url: self.heartbeat_url(),
            headers: vec![
                ("Authorization".into(), self.authorization()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Bytes::from(self.heartbeat_body(heartbeat)),
            timeout,
        }
    }
}

impl Endpoint {
    /// The heartbeat's JSON with `tokenExpiry` (the token in use, Unix seconds)
    /// added, so the management plane's status can show it.
    fn heartbeat_body(&self, heartbeat: &Heartbeat) -> Vec<u8> {
        // Strings, integers and enums only: serialization cannot fail.
        let mut body = serde_json::to_value(heartbeat).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut body {
            fields.insert("tokenExpiry".into(), self.token_expiry_unix().into());
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// What a configuration response means to the agent.
pub fn fetch_result(response: &Response) -> FetchResult {
    let body = response.body.clone().unwrap_or_default();
    match response.status {
        200 => match response.headers.get(super::signature::SIGNATURE_HEADER) {
            Some(signature) => FetchResult::SignedSnapshot {
                body,
                signature: signature.to_owned(),
                signing_key: response
                    .headers
                    .get(super::signature::SIGNING_KEY_HEADER)
                    .map(str::to_owned),
            },
            None => FetchResult::Snapshot(body),
        },
        304 => FetchResult::NotModified,
        401 | 403 => FetchResult::Unauthorized(detail(response)),
        status => FetchResult::Status {
            status,
            detail: detail(response),
        },
    }
}

/// What a heartbeat response means: any 2xx is accepted.
pub fn heartbeat_result(response: &Response) -> Result<(), String> {
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(format!("status {}: {}", response.status, detail(response)))
    }
}

/// The `detail` (or `title`) of a problem+json body, else the start of the body.
pub fn detail(response: &Response) -> String {
    let body = response.body.as_deref().unwrap_or_default();
    if let Ok(serde_json::Value::Object(problem)) = serde_json::from_slice(body) {
        for field in ["detail", "title"] {
            if let Some(serde_json::Value::String(text)) = problem.get(field) {
                return clip(text);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        response.reason.clone()
    } else {
        clip(text)
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::token::sign;

    fn endpoint() -> Endpoint {
        Endpoint::new(
            "https://mgmt.example:8443/",
            &sign("gw-1", 1_900_000_000, b"k"),
        )
        .unwrap()
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            reason: "Reason".into(),
            body: Some(Bytes::from(body.to_owned())),
            ..Response::default()
        }
    }

    #[test]
    fn only_plain_http_to_another_host_is_cleartext_remote() {
        let token = sign("gw-1", 1_900_000_000, b"k");
        for (url, cleartext) in [
            ("http://192.0.2.1:8090", true),
            ("http://mgmt.example:8090/prefix", true),
            ("http://localhost.example.com:8090", true),
            ("http://0.0.0.0:8090", true),
            ("http://127.0.0.1:8090", false),
            ("http://127.1.2.3:8090", false),
            ("http://localhost:8090", false),
            ("http://[::1]:8090", false),
            ("https://192.0.2.1:8443", false),
            ("https://mgmt.example", false),
        ] {
            let ep = Endpoint::new(url, &token).unwrap();
            assert_eq!(ep.is_cleartext_remote(), cleartext, "{url}");
        }
    }

    #[test]
    fn requests_follow_the_protocol() {
        let ep = endpoint();
        assert_eq!(ep.gateway_id(), "gw-1");
        assert_eq!(ep.token_expiry_unix(), 1_900_000_000);
        let id = ContentId {
            revision: 12,
            store_id: Some("s".into()),
            digest: Some("ab".into()),
        };
        let req = ep.fetch_request(
            Some(&id),
            Some(Duration::from_secs(30)),
            Duration::from_secs(40),
        );
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.url,
            "https://mgmt.example:8443/gateways/gw-1/configuration?wait=30"
        );
        assert_eq!(req.timeout, Duration::from_secs(40));
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("If-None-Match").as_deref(), Some("\"12-ab\""));
        let auth = header("Authorization").unwrap();
        assert!(auth.starts_with("GatewayKey gw-1&1900000000&"), "{auth}");
        let plain = ep.fetch_request(None, None, Duration::from_secs(10));
        assert!(plain.url.ends_with("/gateways/gw-1/configuration"));
        assert!(!plain.headers.iter().any(|(n, _)| n == "If-None-Match"));

        let hb = Heartbeat {
            instance_id: "i".into(),
            hostname: "h".into(),
            version: "v".into(),
            applied_revision: Some(12),
            applied_digest: Some("ab".into()),
            store_id: Some("s".into()),
            uptime_seconds: 0,
            health: crate::sync::heartbeat::Health::NotReady,
            connectivity: crate::sync::heartbeat::Connectivity::Starting,
            compile_errors: vec![],
            backup: Default::default(),
            state_store: None,
        };
        let post = ep.heartbeat_request(&hb, Duration::from_secs(10));
        assert_eq!(post.method, "POST");
        assert_eq!(
            post.url,
            "https://mgmt.example:8443/gateways/gw-1/heartbeat"
        );
        let back: Heartbeat = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(back, hb);
    }

    #[test]
    fn a_token_without_its_scheme_gets_one() {
        let token = sign("gw-2", 5, b"k");
        let bare = token.trim_start_matches("GatewayKey ");
        let ep = Endpoint::new("http://m", bare).unwrap();
        let req = ep.fetch_request(None, None, Duration::from_secs(1));
        assert!(req
            .headers
            .iter()
            .any(|(n, v)| n == "Authorization" && *v == token));
        assert!(!format!("{ep:?}").contains(bare.rsplit('&').next().unwrap()));
    }

    #[test]
    fn bad_urls_and_tokens_are_refused() {
        let token = sign("gw", 5, b"k");
        assert!(matches!(
            Endpoint::new("ftp://m", &token),
            Err(EndpointError::Url { .. })
        ));
        assert!(matches!(
            Endpoint::new("not a url", &token),
            Err(EndpointError::Url { .. })
        ));
        assert!(matches!(
            Endpoint::new("http://m", "Bearer x"),
            Err(EndpointError::Token(_))
        ));
    }

    #[test]
    fn responses_are_classified() {
        assert_eq!(
            fetch_result(&response(200, "{}")),
            FetchResult::Snapshot(Bytes::from_static(b"{}"))
        );
        assert_eq!(fetch_result(&response(304, "")), FetchResult::NotModified);
        assert_eq!(
            fetch_result(&response(
                401,
                r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"token expired"}"#
            )),
            FetchResult::Unauthorized("token expired".into())
        );
        assert_eq!(
            fetch_result(&response(503, "")),
            FetchResult::Status {
                status: 503,
                detail: "Reason".into()
            }
        );
        let long = "x".repeat(1000);
        let FetchResult::Status { detail, .. } = fetch_result(&response(500, &long)) else {
            panic!()
        };
        assert!(detail.chars().count() <= MAX_DETAIL + 1);
        assert_eq!(heartbeat_result(&response(204, "")), Ok(()));
        assert!(heartbeat_result(&response(404, "no such gateway"))
            .unwrap_err()
            .contains("404"));
    }
}
