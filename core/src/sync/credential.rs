//! The gateway token's decisions: what a refusal by the management plane means,
//! the token's status (the token in use, its expiry, refusal and renewal counts)
//! and its expiry maths. The driver shares one [`TokenState`] behind a lock
//! (`portcullis_driver::sync::credential::Credential`) so a renewal swaps the
//! token once for configuration fetches, heartbeats and telemetry uploads; an
//! [`Endpoint`](super::protocol::Endpoint) reads it through [`TokenSource`].

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

/// The token in use with its refusal and renewal counts: the status a
/// credential holder keeps, changed only through `&mut self` (the driver shares
/// it behind its lock). `Debug` shows the expiry, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenState {
    authorization: String,
    expiry_unix: u64,
    refusals: [u64; 4],
    renewals: u64,
    last_refusal: Option<String>,
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenState")
            .field("expiry_unix", &self.expiry_unix)
            .finish_non_exhaustive()
    }
}

impl TokenState {
    /// A token presenting `authorization` (`GatewayKey …`), valid until
    /// `expiry_unix`, never refused nor renewed.
    pub fn new(authorization: String, expiry_unix: u64) -> TokenState {
        TokenState {
            authorization,
            expiry_unix,
            refusals: [0; 4],
            renewals: 0,
            last_refusal: None,
        }
    }

    /// The `Authorization` header value to send now.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// When the token in use expires, Unix seconds.
    pub fn expiry_unix(&self) -> u64 {
        self.expiry_unix
    }

    /// Uses a renewed token from now on (and counts the renewal).
    pub fn replace(&mut self, authorization: String, expiry_unix: u64) {
        self.authorization = authorization;
        self.expiry_unix = expiry_unix;
        self.renewals += 1;
    }

    /// Counts a refusal of the token by the management plane, with its detail.
    pub fn record_refusal(&mut self, detail: &str) -> RefusalReason {
        let reason = RefusalReason::classify(detail);
        self.refusals[reason.index()] += 1;
        self.last_refusal = Some(detail.to_owned());
        reason
    }

    /// The last refusal's detail, if any.
    pub fn last_refusal(&self) -> Option<&str> {
        self.last_refusal.as_deref()
    }

    /// The values `/metrics` shows.
    pub fn gauges(&self) -> TokenGauges {
        TokenGauges {
            expiry_unix: self.expiry_unix,
            refusals: self.refusals,
            renewals: self.renewals,
        }
    }

    /// How long the token has left at `now_unix`.
    pub fn validity(&self, now_unix: u64) -> TokenValidity {
        TokenValidity::at(self.expiry_unix, now_unix)
    }
}

/// Where a management [`Endpoint`](super::protocol::Endpoint) finds the token to
/// send when it builds a request. The endpoint's own is fixed (the token it was
/// made with); the driver implements it over its shared, renewable credential.
pub trait TokenSource: Send + Sync {
    /// The `Authorization` header value to send now.
    fn authorization(&self) -> String;

    /// When the token in use expires, Unix seconds.
    fn expiry_unix(&self) -> u64;

    /// The values `/metrics` shows.
    fn gauges(&self) -> TokenGauges;
}

impl TokenSource for TokenState {
    fn authorization(&self) -> String {
        self.authorization.clone()
    }

    fn expiry_unix(&self) -> u64 {
        self.expiry_unix
    }

    fn gauges(&self) -> TokenGauges {
        TokenState::gauges(self)
    }
}

impl std::fmt::Debug for dyn TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The expiry, never the token.
        f.debug_struct("TokenSource")
            .field("expiry_unix", &self.expiry_unix())
            .finish_non_exhaustive()
    }
}

/// How long a gateway token has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenValidity {
    /// More than three days.
    Valid,
    /// Less than three days: `hours` whole hours.
    ExpiresSoon {
        /// Whole hours left.
        hours: u64,
    },
    /// Already expired: the management plane will refuse it.
    Expired,
}

impl TokenValidity {
    /// A token expiring at `expiry_unix`, seen at `now_unix` (Unix seconds).
    pub fn at(expiry_unix: u64, now_unix: u64) -> TokenValidity {
        if expiry_unix <= now_unix {
            TokenValidity::Expired
        } else if expiry_unix - now_unix < 3 * 24 * 3600 {
            TokenValidity::ExpiresSoon {
                hours: (expiry_unix - now_unix) / 3600,
            }
        } else {
            TokenValidity::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_and_counted() {
        let mut c = TokenState::new("GatewayKey a&1&x".into(), 1);
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
        assert_eq!(c.last_refusal(), Some("malformed"));
        assert!(!format!("{c:?}").contains("GatewayKey"));
    }

    #[test]
    fn validity_counts_whole_hours_under_three_days() {
        let day = 24 * 3600;
        assert_eq!(TokenValidity::at(100, 100), TokenValidity::Expired);
        assert_eq!(TokenValidity::at(100, 200), TokenValidity::Expired);
        assert_eq!(
            TokenValidity::at(3 * day - 1, 0),
            TokenValidity::ExpiresSoon { hours: 71 }
        );
        assert_eq!(TokenValidity::at(3 * day, 0), TokenValidity::Valid);
    }
}
