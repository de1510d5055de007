//! Answers of the operations endpoints (`/healthz`, `/readyz`).

/// Status and body for a request to the operations port; `ready` when a configuration
/// is loaded and requests can be served.
pub fn ops_response(path: &[u8], ready: bool) -> (u16, &'static str) {
    match path {
        b"/healthz" => (200, "ok\n"),
        b"/readyz" if ready => (200, "ready\n"),
        b"/readyz" => (503, "not ready: no configuration loaded\n"),
        _ => (404, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_readiness() {
        assert_eq!(ops_response(b"/healthz", false).0, 200);
        assert_eq!(ops_response(b"/readyz", true).0, 200);
        assert_eq!(ops_response(b"/readyz", false).0, 503);
        assert_eq!(ops_response(b"/metrics", true).0, 404);
    }
}
