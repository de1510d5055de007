//! OpenID key sets (`validate-jwt` `<openid-config url="...">`): when each
//! configuration is fetched again ([`RefreshSchedule`]) and the two requests of
//! one fetch, configuration then key set ([`KeySetFetch`]).
//!
//! Both are [`Machine`]s. The schedule's inputs (sources, fetch results, the
//! timer) carry `now`; its outputs are the sources due for a fetch, each
//! marked in flight as it is given; its timer is the next source falling due.
//! A fetch's first request is [`KeySetFetch::start`]; each response
//! ([`KeySetFetch::handle_input`]) gives exactly one output: the next request,
//! the key set, or why there is none. It has no timers (the driver enforces
//! each request's timeout).
//!
//! Invariants (checked by `check_invariants` after every input in debug
//! builds): a schedule holds each source once; a fetch knows no issuer before
//! the configuration document answered, and holds an output only after a
//! response.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{CalloutRequest, CalloutTarget};
use crate::http::Response;
use crate::machine::{debug_check, Machine};

/// How often key sets are fetched again, and how failures back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Time between two fetches of a source after a success.
    pub interval: Duration,
    /// Wait after the first failure; doubled after each further one.
    pub min_backoff: Duration,
    /// Longest wait after failures.
    pub max_backoff: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            interval: Duration::from_secs(3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RefreshPolicy {
    /// The wait after `failures` consecutive failures (1 or more).
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        self.min_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

#[derive(Debug)]
struct Source {
    url: String,
    /// When to fetch next; `None` while a fetch is in flight.
    due: Option<Instant>,
    failures: u32,
}

/// When to fetch each OpenID configuration: at once when it is new, every
/// `interval` after a success, after a capped exponential backoff after failures.
/// At most one fetch per source is in flight.
#[derive(Debug)]
pub struct RefreshSchedule {
    policy: RefreshPolicy,
    sources: Vec<Source>,
    /// The latest time an input brought (what `poll_output` is due against).
    now: Option<Instant>,
}

impl RefreshSchedule {
    /// A schedule without sources.
    pub fn new(policy: RefreshPolicy) -> Self {
        RefreshSchedule {
            policy,
            sources: Vec::new(),
            now: None,
        }
    }

    /// Replaces the set of sources: new ones are due at once, known ones keep
    /// their schedule, missing ones are forgotten (a fetch in flight for one of
    /// them is ignored when it reports back). Duplicates count once.
    pub fn set_sources<I, S>(&mut self, urls: I, now: Instant)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tick(now);
        let mut next: Vec<Source> = Vec::new();
        for url in urls {
            let url = url.into();
            if next.iter().any(|s| s.url == url) {
                continue;
            }
            match self.sources.iter().position(|s| s.url == url) {
                Some(i) => next.push(self.sources.swap_remove(i)),
                None => next.push(Source {
                    url,
                    due: Some(now),
                    failures: 0,
                }),
            }
        }
        self.sources = next;
        debug_check(self);
    }

    /// The sources, in the order given.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.url.as_str())
    }

    /// A source due for a fetch at `now`, marked in flight until its result is
    /// reported with [`handle_success`](Self::handle_success) or
    /// [`handle_failure`](Self::handle_failure): `handle_timeout(now)`, then
    /// `poll_output`.
    pub fn poll_due(&mut self, now: Instant) -> Option<String> {
        self.handle_timeout(now);
        self.poll_output()
    }

    /// Moves the schedule's clock to `now` (never back).
    fn tick(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |was| was.max(now)));
    }

    fn take_due(&mut self, now: Instant) -> Option<String> {
        let source = self
            .sources
            .iter_mut()
            .find(|s| s.due.is_some_and(|due| due <= now))?;
        source.due = None;
        Some(source.url.clone())
    }

    /// When the next source falls due (`None`: nothing to wait for).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sources.iter().filter_map(|s| s.due).min()
    }

    /// The fetch of `url` succeeded; `false` if the source is no longer wanted
    /// (its keys should then be dropped, not installed).
    pub fn handle_success(&mut self, url: &str, now: Instant) -> bool {
        self.tick(now);
        let interval = self.policy.interval;
        let wanted = match self.in_flight(url) {
            Some(source) => {
                source.failures = 0;
                source.due = Some(now + interval);
                true
            }
            None => false,
        };
        debug_check(self);
        wanted
    }

    /// The fetch of `url` failed; the wait before the next try (`None` if the
    /// source is no longer wanted).
    pub fn handle_failure(&mut self, url: &str, now: Instant) -> Option<Duration> {
        self.tick(now);
        let policy = self.policy;
        let wait = self.in_flight(url).map(|source| {
            source.failures = source.failures.saturating_add(1);
            let wait = policy.backoff(source.failures);
            source.due = Some(now + wait);
            wait
        });
        debug_check(self);
        wait
    }

    fn in_flight(&mut self, url: &str) -> Option<&mut Source> {
        self.sources
            .iter_mut()
            .find(|s| s.url == url && s.due.is_none())
    }
}

impl Machine for RefreshSchedule {
    /// A source to fetch now (marked in flight).
    type Output = String;

    fn poll_output(&mut self) -> Option<String> {
        let now = self.now?;
        self.take_due(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        RefreshSchedule::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        debug_check(self);
    }

    fn check_invariants(&self) {
        for (i, source) in self.sources.iter().enumerate() {
            assert!(
                self.sources[..i].iter().all(|s| s.url != source.url),
                "a source is held once"
            );
        }
    }
}

/// Why an OpenID configuration or key set fetch did not give a key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// A document was answered with a status other than 2xx.
    #[error("{what} answered with status {status}")]
    Status {
        /// Which document.
        what: &'static str,
        /// The status.
        status: u16,
    },
    /// A document is not the JSON expected.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Largest key set or configuration document accepted.
pub const MAX_DISCOVERY_DOCUMENT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchStage {
    Config,
    KeySet,
    Done,
}

/// What one OpenID configuration gave: its issuer and its key set. Both are
/// installed together, so a token is never checked against the keys of one
/// fetch and the issuer of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedKeySet {
    /// The configuration's `issuer` (`None`: the document names none, and then
    /// only issuers the policy lists are accepted).
    pub issuer: Option<String>,
    /// The key set document (a JSON object with a `keys` array).
    pub jwks: Bytes,
}

/// What to do next in a key set fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySetStep {
    /// Perform this request and hand its response to `handle_response`.
    Fetch(CalloutRequest),
    /// The configuration's issuer and key set.
    Done(FetchedKeySet),
}

/// Fetching one key set: the OpenID configuration document, then the `jwks_uri`
/// it names.
#[derive(Debug)]
pub struct KeySetFetch {
    config_url: String,
    timeout: Duration,
    stage: FetchStage,
    /// The issuer the configuration document named.
    issuer: Option<String>,
    /// What the last response gave, until `poll_output` takes it.
    outcome: Option<Result<KeySetStep, DiscoveryError>>,
}

impl KeySetFetch {
    /// A fetch starting at the OpenID configuration `config_url`, each request
    /// limited to `timeout`.
    pub fn new(config_url: &str, timeout: Duration) -> Self {
        KeySetFetch {
            config_url: config_url.to_owned(),
            timeout,
            stage: FetchStage::Config,
            issuer: None,
            outcome: None,
        }
    }

    /// The first request: the configuration document.
    pub fn start(&self) -> CalloutRequest {
        json_get(&self.config_url, self.timeout)
    }

    /// Takes the response to the last request; what it gives (the next
    /// request, the key set, or why not) waits in `poll_output`.
    pub fn handle_input(&mut self, response: &Response) {
        self.outcome = Some(self.step(response));
        debug_check(self);
    }

    /// Takes the response to the last request: the next request, or the key set
    /// ([`handle_input`](Self::handle_input), then its output).
    pub fn handle_response(&mut self, response: &Response) -> Result<KeySetStep, DiscoveryError> {
        self.handle_input(response);
        // `handle_input` always leaves an output; the fallback is never taken.
        self.poll_output().unwrap_or(Err(DiscoveryError::Invalid {
            what: "key set",
            reason: "the fetch gave no answer".to_owned(),
        }))
    }

    fn step(&mut self, response: &Response) -> Result<KeySetStep, DiscoveryError> {
        let stage = self.stage;
        let what = match stage {
            FetchStage::Config => "OpenID configuration",
            _ => "key set",
        };
        self.stage = FetchStage::Done;
        if !(200..300).contains(&response.status) {
            return Err(DiscoveryError::Status {
                what,
                status: response.status,
            });
        }
        let body = response.body.clone().unwrap_or_default();
        let invalid = |reason: String| DiscoveryError::Invalid { what, reason };
        if body.len() as u64 > MAX_DISCOVERY_DOCUMENT {
            return Err(invalid(format!(
                "larger than {MAX_DISCOVERY_DOCUMENT} bytes"
            )));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        match stage {
            FetchStage::Config => {
                let uri = doc
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| invalid("no `jwks_uri` string".to_owned()))?;
                CalloutTarget::parse(uri).map_err(|e| invalid(e.to_string()))?;
                self.issuer = match doc.get("issuer") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(i)) if !i.trim().is_empty() => Some(i.clone()),
                    Some(_) => return Err(invalid("`issuer` is not a string".to_owned())),
                };
                self.stage = FetchStage::KeySet;
                Ok(KeySetStep::Fetch(json_get(uri, self.timeout)))
            }
            FetchStage::KeySet => {
                if !doc.get("keys").is_some_and(serde_json::Value::is_array) {
                    return Err(invalid("no `keys` array".to_owned()));
                }
                Ok(KeySetStep::Done(FetchedKeySet {
                    issuer: self.issuer.take(),
                    jwks: body,
                }))
            }
            FetchStage::Done => Err(invalid("the fetch is already over".to_owned())),
        }
    }
}

impl Machine for KeySetFetch {
    /// The next request, the key set, or why there is none.
    type Output = Result<KeySetStep, DiscoveryError>;

    fn poll_output(&mut self) -> Option<Self::Output> {
        self.outcome.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // The driver enforces each request's timeout.
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn check_invariants(&self) {
        if self.stage == FetchStage::Config {
            assert!(
                self.issuer.is_none(),
                "no issuer before the configuration answered"
            );
            assert!(self.outcome.is_none(), "an output only after a response");
        }
    }
}

fn json_get(url: &str, timeout: Duration) -> CalloutRequest {
    let mut request = CalloutRequest::get(url, timeout);
    request
        .headers
        .push(("Accept".to_owned(), "application/json".to_owned()));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- key sets ----

    fn json(status: u16, body: &str) -> Response {
        Response {
            status,
            body: Some(Bytes::copy_from_slice(body.as_bytes())),
            ..Response::default()
        }
    }

    #[test]
    fn key_set_fetch() {
        let mut fetch = KeySetFetch::new(
            "https://idp/.well-known/openid-configuration",
            Duration::from_secs(5),
        );
        let first = fetch.start();
        assert_eq!(first.url, "https://idp/.well-known/openid-configuration");
        assert_eq!(first.method, "GET");
        assert_eq!(first.timeout, Duration::from_secs(5));
        let step = fetch
            .handle_response(&json(
                200,
                r#"{"issuer":"x","jwks_uri":"https://idp/keys"}"#,
            ))
            .unwrap();
        let KeySetStep::Fetch(next) = step else {
            panic!("{step:?}")
        };
        assert_eq!(next.url, "https://idp/keys");
        let step = fetch.handle_response(&json(200, r#"{"keys":[]}"#)).unwrap();
        assert_eq!(
            step,
            KeySetStep::Done(FetchedKeySet {
                issuer: Some("x".to_owned()),
                jwks: Bytes::from_static(br#"{"keys":[]}"#)
            })
        );
    }

    #[test]
    fn key_set_fetch_failures() {
        let start = || KeySetFetch::new("http://idp/c", Duration::from_secs(1));
        let e = start().handle_response(&json(404, "")).unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::Status {
                what: "OpenID configuration",
                status: 404
            }
        );
        for body in [
            "",
            "{",
            r#"{"jwks_uri":1}"#,
            r#"{"jwks_uri":"/relative"}"#,
            r#"{"jwks_uri":"http://idp/k","issuer":5}"#,
            "[]",
        ] {
            let e = start().handle_response(&json(200, body)).unwrap_err();
            assert!(matches!(e, DiscoveryError::Invalid { .. }), "{body}");
        }
        for body in ["<html>", r#"{"keys":{}}"#, r#"{"other":[]}"#] {
            let mut fetch = start();
            fetch
                .handle_response(&json(200, r#"{"jwks_uri":"http://idp/k"}"#))
                .unwrap();
            let e = fetch.handle_response(&json(200, body)).unwrap_err();
            assert!(
                matches!(
                    e,
                    DiscoveryError::Invalid {
                        what: "key set",
                        ..
                    }
                ),
                "{body}"
            );
        }
        let mut fetch = start();
        fetch
            .handle_response(&json(200, r#"{"jwks_uri":"http://idp/k"}"#))
            .unwrap();
        assert!(matches!(
            fetch.handle_response(&json(500, "")),
            Err(DiscoveryError::Status {
                what: "key set",
                status: 500
            })
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RefreshPolicy::default();
        let secs: Vec<u64> = (1..=12).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
    }
}
