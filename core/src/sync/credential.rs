//! The gateway token a connected gateway currently presents, shared by every
//! clone of its [`Endpoint`](super::protocol::Endpoint): a renewal swaps it once
//! and configuration fetches, heartbeats and telemetry uploads all use the new one
//! from then on. It also counts the management plane's refusals for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

/// Why the management plane refused the gateway token, as far as its answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The token's expiry has passed.
    Expired,
    /// Forged, or signed with a key that has since been regenerated.
    BadSignature,
    /// The management plane knows no gateway of the token's id (or it is for another).
    UnknownGateway,
    /// Anything else (a malformed token, an unexpected answer).
    Other,
}

impl RefusalReason {
    /// Every reason, in the order of the metric's series.
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::Expired,
        RefusalReason::BadSignature,
        RefusalReason::UnknownGateway,
        RefusalReason::Other,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Expired => "expired",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::UnknownGateway => "unknown_gateway",
            RefusalReason::Other => "other",
        }
    }

    /// Classifies the detail of a 401/403/404 answer (the management plane's
    /// problem `detail`, see `portcullis_core::sync::token::TokenError`).
    pub fn classify(detail: &str) -> RefusalReason {
        let detail = detail.to_ascii_lowercase();
        if detail.contains("expired") {
            RefusalReason::Expired
        } else if detail.contains("signature") || detail.contains("regenerated") {
            RefusalReason::BadSignature
        } else if detail.contains("another gateway") || detail.contains("not found") {
            RefusalReason::UnknownGateway
        } else {
            RefusalReason::Other
        }
    }

    fn index(self) -> usize {
        match self {
            RefusalReason::Expired => 0,
            RefusalReason::BadSignature => 1,
            RefusalReason::UnknownGateway => 2,
            RefusalReason::Other => 3,
        }
    }
}

/// The token values the gauges show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenGauges {
    /// When the token in use expires, Unix seconds.
    pub expiry_unix: u64,
    /// Refusals so far, per [`RefusalReason::ALL`].
    pub refusals: [u64; 4],
    /// Tokens renewed so far.
    pub renewals: u64,
}

struct Current {
    authorization: String,
    expiry_unix: u64,
}

/// The token in use, replaceable in place, with refusal and renewal counts.
/// `Debug` shows the expiry, never the token.
pub struct Credential {
    current: RwLock<Current>,
    refusals: [AtomicU64; 4],
    renewals: AtomicU64,
    last_refusal: Mutex<Option<String>>,
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
            current: RwLock::new(Current {
                authorization,
                expiry_unix,
            }),
            refusals: Default::default(),
            renewals: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
        }
    }

    /// The `Authorization` header value to send now.
    pub fn authorization(&self) -> String {
        self.read(|c| c.authorization.clone())
    }

    /// When the token in use expires, Unix seconds.
    pub fn expiry_unix(&self) -> u64 {
        self.read(|c| c.expiry_unix)
    }

    /// Uses a renewed token from now on.
    pub fn replace(&self, authorization: String, expiry_unix: u64) {
        // A poisoned lock only means a reader panicked; the value is still whole.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Current {
            authorization,
            expiry_unix,
        };
        drop(current);
        self.renewals.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal of the token by the management plane, with its detail.
    pub fn record_refusal(&self, detail: &str) -> RefusalReason {
        let reason = RefusalReason::classify(detail);
        self.refusals[reason.index()].fetch_add(1, Ordering::Relaxed);
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(detail.to_owned());
        reason
    }

    /// The last refusal's detail, if any.
    pub fn last_refusal(&self) -> Option<String> {
        self.last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The values `/metrics` shows.
    pub fn gauges(&self) -> TokenGauges {
        TokenGauges {
            expiry_unix: self.expiry_unix(),
            refusals: std::array::from_fn(|i| self.refusals[i].load(Ordering::Relaxed)),
            renewals: self.renewals.load(Ordering::Relaxed),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Current) -> T) -> T {
        f(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_and_counted() {
        let c = Credential::new("GatewayKey a&1&x".into(), 1);
        assert_eq!(
            c.record_refusal("gateway token expired"),
            RefusalReason::Expired
        );
        assert_eq!(
            c.record_refusal("gateway token signature does not match the gateway's keys"),
            RefusalReason::BadSignature
        );
        assert_eq!(
            c.record_refusal("the gateway token is for another gateway"),
            RefusalReason::UnknownGateway
        );
        assert_eq!(c.record_refusal("malformed"), RefusalReason::Other);
        c.replace("GatewayKey a&9&y".into(), 9);
        let g = c.gauges();
        assert_eq!(g.refusals, [1, 1, 1, 1]);
        assert_eq!((g.expiry_unix, g.renewals), (9, 1));
        assert_eq!(c.authorization(), "GatewayKey a&9&y");
        assert_eq!(c.last_refusal().as_deref(), Some("malformed"));
        assert!(!format!("{c:?}").contains("GatewayKey"));
    }
}
