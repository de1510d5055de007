//! The gateway token in use, shared by the sync loop, telemetry uploads and
//! renewal: a renewal swaps it once and configuration fetches, heartbeats and
//! telemetry uploads all send the new one from then on. The decisions (what a
//! refusal means, the counts, the expiry maths) are core's [`TokenState`]; this
//! is only its shared, locked holder.

use std::sync::{Arc, PoisonError, RwLock};

use portcullis_core::sync::credential::{TokenGauges, TokenSource, TokenState};
use portcullis_core::sync::protocol::Endpoint;

pub use portcullis_core::sync::credential::RefusalReason;

/// The token in use, replaceable in place, with refusal and renewal counts.
/// `Debug` shows the expiry, never the token.
pub struct Credential {
    state: RwLock<TokenState>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("expiry_unix", &self.expiry_unix())
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A credential presenting `authorization` (`GatewayKey …`), valid until
    /// `expiry_unix`.
    pub fn new(authorization: String, expiry_unix: u64) -> Credential {
        Credential {
            state: RwLock::new(TokenState::new(authorization, expiry_unix)),
        }
    }

    /// A credential starting with `endpoint`'s token, and the endpoint sending
    /// whatever token it holds from then on (as every clone of it does).
    pub fn attach(endpoint: Endpoint) -> (Endpoint, Arc<Credential>) {
        let credential = Arc::new(Credential::new(
            endpoint.authorization(),
            endpoint.token_expiry_unix(),
        ));
        let endpoint = endpoint.with_token_source(credential.clone());
        (endpoint, credential)
    }

    /// The `Authorization` header value to send now.
    pub fn authorization(&self) -> String {
        self.read(|s| s.authorization().to_owned())
    }

    /// When the token in use expires, Unix seconds.
    pub fn expiry_unix(&self) -> u64 {
        self.read(TokenState::expiry_unix)
    }

    /// Uses a renewed token from now on.
    pub fn replace(&self, authorization: String, expiry_unix: u64) {
        self.write(|s| s.replace(authorization, expiry_unix));
    }

    /// Counts a refusal of the token by the management plane, with its detail.
    pub fn record_refusal(&self, detail: &str) -> RefusalReason {
        self.write(|s| s.record_refusal(detail))
    }

    /// The last refusal's detail, if any.
    pub fn last_refusal(&self) -> Option<String> {
        self.read(|s| s.last_refusal().map(str::to_owned))
    }

    /// The values `/metrics` shows.
    pub fn gauges(&self) -> TokenGauges {
        self.read(TokenState::gauges)
    }

    fn read<T>(&self, f: impl FnOnce(&TokenState) -> T) -> T {
        // A poisoned lock only means a holder panicked; the value is still whole
        // (every change is one assignment of plain fields).
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut TokenState) -> T) -> T {
        f(&mut self.state.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl TokenSource for Credential {
    fn authorization(&self) -> String {
        Credential::authorization(self)
    }

    fn expiry_unix(&self) -> u64 {
        Credential::expiry_unix(self)
    }

    fn gauges(&self) -> TokenGauges {
        Credential::gauges(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::sync::token::sign;

    #[test]
    fn every_clone_of_an_attached_endpoint_sends_the_renewed_token() {
        let endpoint = Endpoint::new("http://m:1", &sign("gw", 5, b"k")).unwrap();
        let (endpoint, c) = Credential::attach(endpoint);
        let other = endpoint.clone();
        assert_eq!(c.authorization(), sign("gw", 5, b"k"));
        assert_eq!(
            c.record_refusal("gateway token expired"),
            RefusalReason::Expired
        );
        c.replace("GatewayKey gw&9&y".into(), 9);
        assert_eq!(other.authorization(), "GatewayKey gw&9&y");
        assert_eq!(other.token_expiry_unix(), 9);
        let g = c.gauges();
        assert_eq!(
            (g.refusals, g.renewals, g.expiry_unix),
            ([1, 0, 0, 0], 1, 9)
        );
        assert_eq!(c.last_refusal().as_deref(), Some("gateway token expired"));
        assert!(!format!("{c:?}").contains("GatewayKey"));
    }
}
