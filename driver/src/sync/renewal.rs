//! Driving [`TokenRenewal`] from an adapter's sync task, beside the agent: the
//! renewal request and its answer, swapping the token every user of the
//! [`Endpoint`] sends, keeping the renewed token next to the backup, logging.
//! The adapter runs the [`Job`]s and hands back their [`Finished`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use portcullis_core::callout::{CalloutFailure, CalloutRequest};
use portcullis_core::expr::encoding::uri_escape;
use portcullis_core::policy::context::Response;
use portcullis_core::sync::backup_key::BackupKey;
use portcullis_core::sync::event::Severity;
use portcullis_core::sync::protocol::{self, Endpoint};
use portcullis_core::sync::renewal::{RenewResult, RenewalEvent, RenewalOutput, TokenRenewal};
use portcullis_core::sync::token_file::{start_token, StartToken, TokenKeeper};
use portcullis_core::sync::{FetchResult, SyncAgent};

use super::credential::Credential;
use super::jobs::{Finished, Job};

/// `POST {base}/gateways/{id}/token/renew`, with the token in use.
pub fn renew_request(endpoint: &Endpoint, timeout: Duration) -> CalloutRequest {
    CalloutRequest {
        method: "POST".into(),
        url: format!(
            "{}/gateways/{}/token/renew",
            endpoint.base_url(),
            uri_escape(endpoint.gateway_id())
        ),
        headers: vec![
            ("Authorization".into(), endpoint.authorization()),
            ("Content-Type".into(), "application/json".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: Bytes::from_static(b"{}"),
        timeout,
    }
}

/// What a renewal's answer means: 200 with `{"value": "GatewayKey …"}` is a new
/// token; 401, 403 and 404 are a refusal of the token in use.
pub fn renew_result(result: Result<Response, CalloutFailure>) -> RenewResult {
    let response = match result {
        Ok(response) => response,
        Err(e) => return RenewResult::Failed(e.to_string()),
    };
    match response.status {
        200 => {
            let body = response.body.as_deref().unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(answer) => match answer.get("value").and_then(|v| v.as_str()) {
                    Some(value) => RenewResult::Renewed(value.to_owned()),
                    None => RenewResult::Failed("the answer has no `value`".to_owned()),
                },
                Err(e) => RenewResult::Failed(format!("the answer is not JSON: {e}")),
            }
        }
        401 | 403 | 404 => RenewResult::Refused(protocol::detail(&response)),
        status => RenewResult::Failed(format!("status {status}: {}", protocol::detail(&response))),
    }
}

/// The renewal machine with what performing its outputs needs.
#[derive(Debug)]
pub struct Renewer {
    machine: TokenRenewal,
    endpoint: Endpoint,
    /// The token `endpoint` sends: swapped on renewal, counting refusals.
    credential: Arc<Credential>,
    keeper: Option<TokenKeeper>,
    request_timeout: Duration,
}

impl Renewer {
    /// Renews the token of `endpoint`, `credential` (attached to it, see
    /// [`Credential::attach`], and swapped in place); renewed tokens are kept
    /// with `keeper` when a backup is configured.
    pub fn new(
        endpoint: Endpoint,
        credential: Arc<Credential>,
        keeper: Option<TokenKeeper>,
        seed: u64,
        now_unix: u64,
        request_timeout: Duration,
    ) -> Renewer {
        let machine = TokenRenewal::new(
            endpoint.gateway_id(),
            endpoint.token_expiry_unix(),
            seed,
            now_unix,
        );
        Renewer {
            machine,
            endpoint,
            credential,
            keeper,
            request_timeout,
        }
    }

    /// The jobs to run for what the machine decided; events are logged and a
    /// renewed token is put in use at once.
    pub fn jobs(&mut self) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Some(output) = self.machine.poll_output() {
            match output {
                RenewalOutput::Renew => {
                    tracing::debug!("renewing the gateway token");
                    jobs.push(Job::RenewToken(renew_request(
                        &self.endpoint,
                        self.request_timeout,
                    )));
                }
                RenewalOutput::Adopt { token, expiry_unix } => {
                    self.credential.replace(token.clone(), expiry_unix);
                    if let Some(keeper) = &mut self.keeper {
                        match keeper.seal(&token, expiry_unix) {
                            Ok(bytes) => jobs.push(Job::SaveToken(bytes)),
                            Err(e) => tracing::error!("the renewed token cannot be kept: {e}"),
                        }
                    }
                }
                RenewalOutput::Event(event) => log(&event),
            }
        }
        jobs
    }

    /// Counts a refused configuration fetch (before it goes to the agent), for
    /// the metrics.
    pub fn observe(&self, finished: &Finished) {
        if let Finished::Fetched(FetchResult::Unauthorized(detail)) = finished {
            self.credential.record_refusal(detail);
        }
    }

    /// Whether `finished` is the renewer's (else it is the agent's).
    pub fn owns(finished: &Finished) -> bool {
        matches!(finished, Finished::Renewed(_) | Finished::TokenSaved(_))
    }

    /// Takes a finished job of the renewer's.
    pub fn handle(&mut self, finished: Finished, now_unix: u64) {
        match finished {
            Finished::Renewed(result) => {
                if let RenewResult::Refused(detail) = &result {
                    self.credential.record_refusal(detail);
                }
                self.machine.handle_renewed(result, now_unix);
            }
            Finished::TokenSaved(Ok(())) => tracing::debug!("the renewed token is kept"),
            Finished::TokenSaved(Err(e)) => tracing::warn!(
                "the renewed token could not be kept next to the backup ({e}); a restart \
                 falls back to the token given at start"
            ),
            _ => {}
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now_unix: u64) {
        self.machine.handle_timeout(now_unix);
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, on the monotonic
    /// clock (`now` and `now_unix` are the same moment on both clocks).
    pub fn deadline(&self, now: Instant, now_unix: u64) -> Option<Instant> {
        let due = self.machine.poll_timeout()?;
        // Whole seconds: waiting until the wall clock has passed `due` (never a
        // moment before, which would wake the task for nothing until it does).
        let wait = Duration::from_secs(due.saturating_sub(now_unix));
        now.checked_add(wait)
    }

    /// Whether the renewal timer is due at `now_unix`.
    pub fn is_due(&self, now_unix: u64) -> bool {
        self.machine
            .poll_timeout()
            .is_some_and(|due| due <= now_unix)
    }

    /// The sync task's one timer, for the agent (whose own deadline is
    /// `agent_deadline`) and this machine: the earlier of the two.
    pub fn next_wake(
        &self,
        agent_deadline: Option<Instant>,
        now: Instant,
        now_unix: u64,
    ) -> Option<Instant> {
        match (agent_deadline, self.deadline(now, now_unix)) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// The sync task's timer went off at `now` (`now_unix` on the wall clock):
    /// tells the agent (due at `agent_deadline`) and this machine, each only
    /// when it is due.
    pub fn handle_wake(
        &mut self,
        agent: &mut SyncAgent,
        agent_deadline: Option<Instant>,
        now: Instant,
        now_unix: u64,
    ) {
        if agent_deadline.is_some_and(|due| due <= now) {
            agent.handle_timeout(now);
        }
        if self.is_due(now_unix) {
            self.handle_timeout(now_unix);
        }
    }
}

/// The token a gateway starts with: the one given (`--token`), or the renewed
/// one kept at `path` beside the backup when [`start_token`] says it may be
/// used; `kept` is what reading that file gave. Logs the choice.
pub fn pick_start_token(
    given: &str,
    kept: Result<Option<Vec<u8>>, String>,
    key: &BackupKey,
    path: &Path,
    now_unix: u64,
) -> String {
    let kept = kept.unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), "the kept gateway token cannot be read: {e}");
        None
    });
    match start_token(given, kept.as_deref(), key, now_unix) {
        StartToken::Given => given.to_owned(),
        StartToken::Kept(renewed) => {
            tracing::info!(path = %path.display(), "starting with the renewed gateway token kept next to the backup");
            renewed
        }
        StartToken::KeptUnused(why) => {
            tracing::warn!(path = %path.display(), "the kept gateway token is not used: {why}");
            given.to_owned()
        }
    }
}

/// 20 random bytes (from the adapter) as the kept token's nonce base and the
/// renewal's jitter seed.
pub fn split_random(bytes: [u8; 20]) -> ([u8; 12], u64) {
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&bytes[..12]);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&bytes[12..]);
    (nonce, u64::from_le_bytes(seed))
}

fn log(event: &RenewalEvent) {
    match event.severity() {
        Severity::Debug => tracing::debug!("{event}"),
        Severity::Info => tracing::info!("{event}"),
        Severity::Warn => tracing::warn!("{event}"),
        Severity::Error => tracing::error!("{event}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::sync::token::sign;

    const T0: u64 = 1_800_000_000;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            reason: "Reason".into(),
            body: Some(Bytes::from(body.to_owned())),
            ..Response::default()
        }
    }

    #[test]
    fn a_renewal_swaps_the_token_every_clone_of_the_endpoint_sends() {
        let endpoint = Endpoint::new("http://m:1", &sign("gw", T0 + 30, b"k")).unwrap();
        let (endpoint, credential) = Credential::attach(endpoint);
        let telemetry_side = endpoint.clone();
        let mut renewer = Renewer::new(
            endpoint,
            credential.clone(),
            None,
            1,
            T0,
            Duration::from_secs(5),
        );
        assert!(renewer.jobs().is_empty());
        assert!(!renewer.is_due(T0 + 18));
        renewer.handle_timeout(T0 + 20);
        let jobs = renewer.jobs();
        let [Job::RenewToken(req)] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        assert_eq!(req.url, "http://m:1/gateways/gw/token/renew");
        assert_eq!(req.method, "POST");
        let fresh = sign("gw", T0 + 3600, b"k");
        let answer = format!(r#"{{"value":"{fresh}","expiry":"…"}}"#);
        let result = renew_result(Ok(response(200, &answer)));
        renewer.handle(Finished::Renewed(result), T0 + 20);
        assert!(renewer.jobs().is_empty(), "no keeper: nothing to save");
        assert_eq!(telemetry_side.authorization(), fresh);
        let req = telemetry_side.telemetry_request(Bytes::new(), Duration::from_secs(1));
        assert!(req.headers.iter().any(|(_, v)| *v == fresh));
        assert_eq!(credential.gauges().renewals, 1);
        assert_eq!(telemetry_side.token_expiry_unix(), T0 + 3600);
    }

    #[test]
    fn answers_are_classified_and_refusals_counted() {
        assert!(matches!(
            renew_result(Ok(response(
                401,
                r#"{"title":"Unauthorized","detail":"gateway token expired"}"#
            ))),
            RenewResult::Refused(d) if d == "gateway token expired"
        ));
        assert!(matches!(
            renew_result(Ok(response(503, ""))),
            RenewResult::Failed(_)
        ));
        assert!(matches!(
            renew_result(Ok(response(200, "{}"))),
            RenewResult::Failed(_)
        ));
        let endpoint = Endpoint::new("http://m:1", &sign("gw", T0 + 30, b"k")).unwrap();
        let (endpoint, credential) = Credential::attach(endpoint);
        let mut renewer = Renewer::new(
            endpoint.clone(),
            credential.clone(),
            None,
            1,
            T0,
            Duration::from_secs(5),
        );
        renewer.observe(&Finished::Fetched(FetchResult::Unauthorized(
            "gateway token expired".into(),
        )));
        renewer.handle_timeout(T0 + 25);
        let _ = renewer.jobs();
        renewer.handle(
            Finished::Renewed(RenewResult::Refused(
                "gateway token signature does not match the gateway's keys".into(),
            )),
            T0 + 25,
        );
        assert_eq!(credential.gauges().refusals, [1, 1, 0, 0]);
        assert_eq!(endpoint.authorization(), sign("gw", T0 + 30, b"k"));
    }
}
