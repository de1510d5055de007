//! When a connected gateway renews its token, and when it warns about its expiry.
//!
//! Like certificate renewal: a token is renewed once less than a third of its
//! lifetime, and at most 7 days, remains ([`renewal_window`]), a little earlier by
//! a seeded jitter of up to a tenth of that window so many gateways given tokens
//! together do not renew in step. A 30-day token renews 7 days before expiry; a
//! 20-second one after about 13 seconds. The lifetime is what was left when the
//! token was taken into use (at start, or when a renewal brought it): a gateway
//! cannot know when an operator's token was issued, so one started late in its
//! token's life still renews at a third of what is left.
//!
//! A failed renewal is retried with backoff (1 s doubling to 5 min) until the
//! token expires; after that the management plane would refuse the attempt anyway.
//! In the last 7 days before expiry (and at start) a warning is given once a day;
//! once the token has expired, an error once a day.
//!
//! Sans-IO: time is an input (`now_unix`, Unix seconds, the wall clock, since
//! expiries are wall-clock times), the seed too. Contract: `handle_*(…, now)`,
//! [`TokenRenewal::poll_output`] until `None`, [`TokenRenewal::poll_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::backoff::{Backoff, BackoffPolicy, Jitter};
use super::event::Severity;
use super::token;
use crate::expr::encoding::splitmix64;

/// The longest time before expiry a token is renewed (and warnings start).
pub const MAX_RENEWAL_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// Warnings about an expiring token come at most this often.
pub const WARN_EVERY_SECS: u64 = 24 * 3600;

/// How long before expiry a token of `lifetime_secs` is renewed: a third of its
/// lifetime, at most 7 days.
pub fn renewal_window(lifetime_secs: u64) -> u64 {
    (lifetime_secs / 3).min(MAX_RENEWAL_WINDOW_SECS)
}

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalOutput {
    /// Send the renewal request (with the token in use) now; answer with
    /// [`TokenRenewal::handle_renewed`].
    Renew,
    /// Use this token from now on (and keep it where the next start finds it).
    Adopt {
        /// The whole token, `GatewayKey …`.
        token: String,
        /// Its expiry, Unix seconds.
        expiry_unix: u64,
    },
    /// Something to log.
    Event(RenewalEvent),
}

/// What happened to the token, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalEvent {
    /// The token expires within the warning window (said once a day).
    ExpiresSoon {
        /// Its expiry, Unix seconds.
        expiry_unix: u64,
        /// Whole hours left.
        hours_left: u64,
        /// When renewal is (next) tried, Unix seconds.
        renew_at_unix: u64,
    },
    /// The token has expired: the management plane refuses it (said once a day).
    Expired {
        /// Its expiry, Unix seconds.
        expiry_unix: u64,
    },
    /// A fresh token was received.
    Renewed {
        /// The new expiry, Unix seconds.
        expiry_unix: u64,
        /// When it will be renewed in turn, Unix seconds.
        next_renewal_unix: u64,
    },
    /// A renewal failed; it is retried.
    RenewalFailed {
        /// Why.
        reason: String,
        /// Consecutive failures.
        failures: u32,
        /// When it is retried, Unix seconds (`None`: not before the token expires).
        retry_at_unix: Option<u64>,
    },
}

impl RenewalEvent {
    /// How loudly to log it.
    pub fn severity(&self) -> Severity {
        match self {
            RenewalEvent::Renewed { .. } => Severity::Info,
            RenewalEvent::ExpiresSoon { .. } | RenewalEvent::RenewalFailed { .. } => Severity::Warn,
            RenewalEvent::Expired { .. } => Severity::Error,
        }
    }
}

impl fmt::Display for RenewalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewalEvent::ExpiresSoon {
                expiry_unix,
                hours_left,
                renew_at_unix,
            } => {
                let left = match hours_left {
                    0 => "under an hour".to_owned(),
                    h => format!("{h} h"),
                };
                write!(
                    f,
                    "the gateway token expires in {left} (at {expiry_unix}, Unix seconds); \
                     renewal is due at {renew_at_unix}. If renewal keeps failing, give the \
                     gateway a new token (POST /gateways/{{id}}/token) before then"
                )
            }
            RenewalEvent::Expired { expiry_unix } => write!(
                f,
                "the gateway token expired at {expiry_unix} (Unix seconds); the management plane \
                 refuses it and the gateway serves the configuration it has. Restart it with a \
                 new token (POST /gateways/{{id}}/token)"
            ),
            RenewalEvent::Renewed {
                expiry_unix,
                next_renewal_unix,
            } => write!(
                f,
                "the gateway token was renewed; it now expires at {expiry_unix} (Unix seconds), \
                 next renewal at {next_renewal_unix}"
            ),
            RenewalEvent::RenewalFailed {
                reason,
                failures,
                retry_at_unix: Some(at),
            } => write!(
                f,
                "renewing the gateway token failed ({failures} in a row): {reason}; retrying at {at}"
            ),
            RenewalEvent::RenewalFailed {
                reason, failures, ..
            } => write!(
                f,
                "renewing the gateway token failed ({failures} in a row): {reason}; the token \
                 expires before another try"
            ),
        }
    }
}

/// How a renewal request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewResult {
    /// The management plane issued this token (`GatewayKey …`).
    Renewed(String),
    /// The management plane refused the token in use (401/403/404): the detail.
    Refused(String),
    /// No usable answer (transport error, 5xx, a body that is no token).
    Failed(String),
}

/// Decides when to renew the gateway token and when to warn about its expiry.
#[derive(Debug)]
pub struct TokenRenewal {
    gateway_id: String,
    expiry_unix: u64,
    /// When the next renewal attempt is due (first try or retry).
    due_unix: u64,
    in_flight: bool,
    /// Whether the expiry itself was reported (at once, then daily).
    expiry_said: bool,
    /// When the next expiry warning may be given.
    next_warn_unix: u64,
    backoff: Backoff,
    rng: u64,
    outputs: VecDeque<RenewalOutput>,
}

impl TokenRenewal {
    /// A machine for the token of `gateway_id` expiring at `expiry_unix`, taken
    /// into use at `now_unix`. Warns at once if it is already in its last week.
    pub fn new(gateway_id: &str, expiry_unix: u64, seed: u64, now_unix: u64) -> TokenRenewal {
        let policy = BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: Jitter::Equal,
        };
        let mut machine = TokenRenewal {
            gateway_id: gateway_id.to_owned(),
            expiry_unix,
            due_unix: 0,
            in_flight: false,
            expiry_said: false,
            next_warn_unix: now_unix,
            backoff: Backoff::new(policy, seed ^ 0x005e_ed0f_7043_u64),
            rng: seed,
            outputs: VecDeque::new(),
        };
        machine.schedule(now_unix);
        machine.warn_if_due(now_unix);
        machine
    }

    /// When the token in use expires, Unix seconds.
    pub fn expiry_unix(&self) -> u64 {
        self.expiry_unix
    }

    /// When the next renewal attempt is due, Unix seconds.
    pub fn due_unix(&self) -> u64 {
        self.due_unix
    }

    /// Plans the renewal of a token just taken into use.
    fn schedule(&mut self, now_unix: u64) {
        let window = renewal_window(self.expiry_unix.saturating_sub(now_unix));
        let jitter = match window / 10 {
            0 => 0,
            span => splitmix64(&mut self.rng) % (span + 1),
        };
        self.due_unix = self
            .expiry_unix
            .saturating_sub(window)
            .saturating_sub(jitter)
            .max(now_unix);
        self.backoff.reset();
    }

    /// Time passed: renews when due, warns when due.
    pub fn handle_timeout(&mut self, now_unix: u64) {
        if !self.in_flight && now_unix >= self.due_unix && now_unix < self.expiry_unix {
            self.in_flight = true;
            self.outputs.push_back(RenewalOutput::Renew);
        } else if now_unix >= self.expiry_unix {
            // Nothing to renew any more: the plane refuses an expired token.
            self.due_unix = self.expiry_unix;
        }
        self.warn_if_due(now_unix);
    }

    /// The renewal request ended.
    pub fn handle_renewed(&mut self, result: RenewResult, now_unix: u64) {
        self.in_flight = false;
        let reason = match result {
            RenewResult::Renewed(value) => match self.check(&value, now_unix) {
                Ok(expiry_unix) => {
                    self.expiry_unix = expiry_unix;
                    self.expiry_said = false;
                    self.schedule(now_unix);
                    // A fresh token resets the daily warning: the next comes only
                    // once this one is in its own last week.
                    self.next_warn_unix = expiry_unix.saturating_sub(MAX_RENEWAL_WINDOW_SECS);
                    self.outputs.push_back(RenewalOutput::Adopt {
                        token: value,
                        expiry_unix,
                    });
                    self.outputs
                        .push_back(RenewalOutput::Event(RenewalEvent::Renewed {
                            expiry_unix,
                            next_renewal_unix: self.due_unix,
                        }));
                    return;
                }
                Err(reason) => reason,
            },
            RenewResult::Refused(detail) => format!("refused: {detail}"),
            RenewResult::Failed(detail) => detail,
        };
        let delay = self.backoff.next_delay().as_secs().max(1);
        self.due_unix = now_unix.saturating_add(delay);
        let retry_at_unix = (self.due_unix < self.expiry_unix).then_some(self.due_unix);
        self.outputs
            .push_back(RenewalOutput::Event(RenewalEvent::RenewalFailed {
                reason,
                failures: self.backoff.failures(),
                retry_at_unix,
            }));
    }

    /// A renewed token must be for this gateway and outlive the one in use.
    fn check(&self, value: &str, now_unix: u64) -> Result<u64, String> {
        let parsed = token::parse(value).map_err(|e| format!("the answer is no token: {e}"))?;
        if parsed.gateway_id != self.gateway_id {
            return Err(format!(
                "the renewed token is for gateway `{}`, not `{}`",
                parsed.gateway_id, self.gateway_id
            ));
        }
        if parsed.expiry_unix <= self.expiry_unix || parsed.expiry_unix <= now_unix {
            return Err("the renewed token does not outlive the one in use".to_owned());
        }
        Ok(parsed.expiry_unix)
    }

    fn warn_if_due(&mut self, now_unix: u64) {
        let expired = now_unix >= self.expiry_unix;
        if now_unix < self.next_warn_unix && (self.expiry_said || !expired) {
            return;
        }
        let event = if expired {
            self.expiry_said = true;
            RenewalEvent::Expired {
                expiry_unix: self.expiry_unix,
            }
        } else if self.expiry_unix - now_unix <= MAX_RENEWAL_WINDOW_SECS {
            RenewalEvent::ExpiresSoon {
                expiry_unix: self.expiry_unix,
                hours_left: (self.expiry_unix - now_unix) / 3600,
                renew_at_unix: self.due_unix,
            }
        } else {
            // Not in the last week yet: the first warning comes when it starts.
            self.next_warn_unix = self.expiry_unix - MAX_RENEWAL_WINDOW_SECS;
            return;
        };
        self.next_warn_unix = now_unix.saturating_add(WARN_EVERY_SECS);
        self.outputs.push_back(RenewalOutput::Event(event));
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<RenewalOutput> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, Unix seconds.
    pub fn poll_timeout(&self) -> Option<u64> {
        let renew = (!self.in_flight && self.due_unix < self.expiry_unix).then_some(self.due_unix);
        Some(renew.map_or(self.next_warn_unix, |r| r.min(self.next_warn_unix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::token::sign;

    const T0: u64 = 1_800_000_000;
    const DAY: u64 = 24 * 3600;

    fn drain(m: &mut TokenRenewal) -> Vec<RenewalOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn events(outputs: &[RenewalOutput]) -> Vec<&RenewalEvent> {
        outputs
            .iter()
            .filter_map(|o| match o {
                RenewalOutput::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_window_is_a_third_of_the_lifetime_at_most_seven_days() {
        assert_eq!(renewal_window(30 * DAY), 7 * DAY);
        assert_eq!(renewal_window(9 * DAY), 3 * DAY);
        assert_eq!(renewal_window(21), 7);
        assert_eq!(renewal_window(0), 0);
    }

    #[test]
    fn a_thirty_day_token_renews_in_its_last_week_with_jitter() {
        for seed in 0..50 {
            let m = TokenRenewal::new("gw", T0 + 30 * DAY, seed, T0);
            let due = m.due_unix();
            // Up to a tenth of the 7-day window earlier, never later.
            assert!(due <= T0 + 23 * DAY, "{seed}");
            assert!(due >= T0 + 23 * DAY - 7 * DAY / 10, "{seed}");
        }
        let dues: std::collections::HashSet<u64> = (0..20)
            .map(|s| TokenRenewal::new("gw", T0 + 30 * DAY, s, T0).due_unix())
            .collect();
        assert!(dues.len() > 10, "the jitter spreads renewals: {dues:?}");
    }

    #[test]
    fn a_short_token_renews_after_two_thirds_of_its_life_and_is_replaced() {
        let mut m = TokenRenewal::new("gw", T0 + 21, 7, T0);
        // Well inside its last week: warned at start.
        let out = drain(&mut m);
        let [RenewalEvent::ExpiresSoon { hours_left: 0, .. }] = events(&out)[..] else {
            panic!("{out:?}")
        };
        let text = events(&out)[0].to_string();
        assert!(text.contains("expires in under an hour"), "{text}");
        assert_eq!(m.poll_timeout(), Some(T0 + 14));
        m.handle_timeout(T0 + 13);
        assert!(drain(&mut m).is_empty());
        m.handle_timeout(T0 + 14);
        assert_eq!(drain(&mut m), vec![RenewalOutput::Renew]);
        // In flight: not asked again.
        m.handle_timeout(T0 + 15);
        assert!(drain(&mut m).is_empty());
        let fresh = sign("gw", T0 + 15 + 30 * DAY, b"k");
        m.handle_renewed(RenewResult::Renewed(fresh.clone()), T0 + 15);
        let out = drain(&mut m);
        assert_eq!(
            out[0],
            RenewalOutput::Adopt {
                token: fresh,
                expiry_unix: T0 + 15 + 30 * DAY
            }
        );
        assert!(matches!(events(&out)[0], RenewalEvent::Renewed { .. }));
        assert_eq!(m.expiry_unix(), T0 + 15 + 30 * DAY);
        assert!(m.due_unix() >= T0 + 15 + 23 * DAY - DAY);
    }

    #[test]
    fn failures_are_retried_with_backoff_until_expiry() {
        let mut m = TokenRenewal::new("gw", T0 + 300, 1, T0);
        drain(&mut m);
        m.handle_timeout(T0 + 200);
        assert_eq!(drain(&mut m), vec![RenewalOutput::Renew]);
        m.handle_renewed(RenewResult::Failed("connection refused".into()), T0 + 200);
        let out = drain(&mut m);
        let RenewalEvent::RenewalFailed {
            failures,
            retry_at_unix: Some(at),
            ..
        } = events(&out)[0]
        else {
            panic!("{out:?}")
        };
        assert_eq!(*failures, 1);
        assert!((T0 + 201..=T0 + 202).contains(at), "{at}");
        m.handle_timeout(*at);
        assert_eq!(drain(&mut m), vec![RenewalOutput::Renew]);
        // A token for another gateway, or one that is not newer, is no renewal.
        m.handle_renewed(
            RenewResult::Renewed(sign("other", T0 + 9_999, b"k")),
            T0 + 203,
        );
        assert!(matches!(
            events(&drain(&mut m))[0],
            RenewalEvent::RenewalFailed { .. }
        ));
        assert_eq!(m.expiry_unix(), T0 + 300);
        // After expiry nothing more is tried; only the daily error remains.
        m.handle_timeout(T0 + 300);
        let out = drain(&mut m);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(events(&out)[0], RenewalEvent::Expired { .. }));
        assert_eq!(m.poll_timeout(), Some(T0 + 300 + DAY));
    }

    #[test]
    fn warnings_come_once_a_day_in_the_last_week_and_at_start() {
        // Started with 5 days left: warned at once.
        let mut m = TokenRenewal::new("gw", T0 + 5 * DAY, 3, T0);
        let out = drain(&mut m);
        assert!(matches!(
            events(&out)[..],
            [RenewalEvent::ExpiresSoon {
                hours_left: 120,
                ..
            }]
        ));
        m.handle_timeout(T0 + DAY - 1);
        assert!(drain(&mut m).is_empty());
        // Renewal keeps failing: one warning a day (with the retries' events).
        let mut warnings = 0;
        let mut now = T0;
        while now < T0 + 5 * DAY {
            now += 600;
            m.handle_timeout(now);
            for o in drain(&mut m) {
                match o {
                    RenewalOutput::Renew => {
                        m.handle_renewed(RenewResult::Refused("bad".into()), now)
                    }
                    RenewalOutput::Event(RenewalEvent::ExpiresSoon { .. }) => warnings += 1,
                    _ => {}
                }
            }
            drain(&mut m);
        }
        assert_eq!(warnings, 4, "days 1 to 4");
        // A 30-day token: silent until its last week.
        let mut m = TokenRenewal::new("gw", T0 + 30 * DAY, 3, T0);
        assert!(drain(&mut m).is_empty());
        assert!(m.poll_timeout().unwrap() <= T0 + 23 * DAY);
        m.handle_timeout(T0 + 23 * DAY);
        let out = drain(&mut m);
        assert!(out.contains(&RenewalOutput::Renew));
        assert!(matches!(
            events(&out)[..],
            [RenewalEvent::ExpiresSoon { .. }]
        ));
        // An expired token at start: an error, and no renewal.
        let mut m = TokenRenewal::new("gw", T0 - 1, 3, T0);
        let out = drain(&mut m);
        assert!(matches!(events(&out)[..], [RenewalEvent::Expired { .. }]));
        m.handle_timeout(T0 + 10);
        assert!(drain(&mut m).is_empty());
    }
}
