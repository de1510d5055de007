//! What an API's `type` asks of the rest of it: a WebSocket API has a
//! `ws://`/`wss://` backend and exactly one `GET` operation (APIM's
//! `onHandshake`); an HTTP API has no WebSocket backend.

use super::{Api, ApiType, Backend};
use crate::http::service_url::is_websocket_url;

/// Checks `api` against its type; the reason on failure.
pub(crate) fn check(api: &Api, backends: &[Backend]) -> Result<(), &'static str> {
    let url = match (&api.service_url, &api.backend_id) {
        (Some(url), _) => Some(url.as_str()),
        (None, Some(id)) => backends
            .iter()
            .find(|b| &b.id == id)
            .map(|b| b.url.as_str()),
        (None, None) => None,
    };
    let websocket_url = url.is_some_and(is_websocket_url);
    match api.api_type {
        ApiType::Http if websocket_url => {
            Err("a ws:// or wss:// backend needs an API of type websocket")
        }
        ApiType::Http => Ok(()),
        ApiType::Websocket if !websocket_url => {
            Err("a websocket API needs a ws:// or wss:// backend URL")
        }
        ApiType::Websocket => match api.operations.as_slice() {
            [op] if op.method == "GET" => Ok(()),
            [] => Err("a websocket API needs its onHandshake operation (GET /)"),
            [_] => Err("a websocket API's onHandshake operation must be GET"),
            _ => Err("a websocket API has exactly one operation, onHandshake"),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Snapshot;

    fn snapshot(api: &str) -> String {
        format!(r#"{{"revision": 1, "apis": [{{"id": "chat", "path": "chat", {api}}}]}}"#)
    }

    fn error(api: &str) -> String {
        let snap = Snapshot::from_json(snapshot(api).as_bytes()).map_err(|e| e.to_string());
        match snap.and_then(|s| s.validate().map_err(|e| e.to_string())) {
            Ok(_) => String::new(),
            Err(e) => e,
        }
    }

    const HANDSHAKE: &str =
        r#""operations": [{"id": "onHandshake", "method": "GET", "urlTemplate": "/"}]"#;

    #[test]
    fn websocket_api_with_ws_backend_and_handshake_is_valid() {
        let api =
            format!(r#""type": "websocket", "serviceUrl": "ws://127.0.0.1:9/echo", {HANDSHAKE}"#);
        assert_eq!(error(&api), "");
        let api =
            format!(r#""type": "websocket", "serviceUrl": "wss://echo.example", {HANDSHAKE}"#);
        assert_eq!(error(&api), "");
    }

    #[test]
    fn websocket_api_needs_ws_backend_and_one_get_operation() {
        let api = format!(r#""type": "websocket", "serviceUrl": "http://b", {HANDSHAKE}"#);
        assert_eq!(
            error(&api),
            "api `chat`: a websocket API needs a ws:// or wss:// backend URL"
        );
        let api = r#""type": "websocket", "serviceUrl": "ws://b""#;
        assert_eq!(
            error(api),
            "api `chat`: a websocket API needs its onHandshake operation (GET /)"
        );
        let api = r#""type": "websocket", "serviceUrl": "ws://b",
            "operations": [{"id": "onHandshake", "method": "POST", "urlTemplate": "/"}]"#;
        assert_eq!(
            error(api),
            "api `chat`: a websocket API's onHandshake operation must be GET"
        );
    }

    #[test]
    fn http_api_refuses_ws_backend_and_unknown_type() {
        let api = format!(r#""serviceUrl": "ws://b", {HANDSHAKE}"#);
        assert_eq!(
            error(&api),
            "api `chat`: a ws:// or wss:// backend needs an API of type websocket"
        );
        let api = format!(r#""type": "graphql", "serviceUrl": "http://b", {HANDSHAKE}"#);
        assert!(error(&api).contains("graphql"), "{}", error(&api));
    }
}
