//! Driving the [`SyncAgent`] from an adapter's task: what each of its outputs asks
//! the adapter to do, and how a finished piece of IO goes back to it.
//!
//! The adapter keeps only what is runtime-specific: running [`Job`]s as tasks,
//! the backup file, the timer and publishing the status. Everything both adapters
//! would otherwise repeat (building the requests, reading the responses, logging
//! the agent's events, telling which results compile a configuration) is here.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::callout::{CalloutFailure, CalloutRequest};
use portcullis_core::config::CompiledConfig;
use portcullis_core::policy::context::Response;
use portcullis_core::sync::protocol::{self, Endpoint};
use portcullis_core::sync::renewal::RenewResult;
use portcullis_core::sync::{Event, FetchResult, Output, Severity, SyncAgent};

/// A piece of IO the agent asked for, for the adapter to run as a task and answer
/// with a [`Finished`].
#[derive(Debug)]
pub enum Job {
    /// Read the backup file.
    LoadBackup,
    /// Make this configuration fetch.
    Fetch(CalloutRequest),
    /// Write these bytes to the backup file atomically.
    SaveBackup(Vec<u8>),
    /// Send this heartbeat.
    Heartbeat(CalloutRequest),
    /// Send this token renewal (see [`super::renewal`]).
    RenewToken(CalloutRequest),
    /// Write these bytes to the kept token file atomically.
    SaveToken(Vec<u8>),
}

impl Job {
    /// What the job does, to answer the agent if its task fails.
    pub fn kind(&self) -> JobKind {
        match self {
            Job::LoadBackup => JobKind::Load,
            Job::Fetch(_) => JobKind::Fetch,
            Job::SaveBackup(_) => JobKind::Save,
            Job::Heartbeat(_) => JobKind::Heartbeat,
            Job::RenewToken(_) => JobKind::RenewToken,
            Job::SaveToken(_) => JobKind::SaveToken,
        }
    }
}

/// What a job was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A configuration fetch.
    Fetch,
    /// A backup read.
    Load,
    /// A backup write.
    Save,
    /// A heartbeat.
    Heartbeat,
    /// A token renewal.
    RenewToken,
    /// A kept token write.
    SaveToken,
}

impl JobKind {
    /// The answer for the agent when the job's task failed (panicked) with `error`,
    /// so the agent is never left waiting for it.
    pub fn failed(self, error: String) -> Finished {
        match self {
            JobKind::Fetch => Finished::Fetched(FetchResult::Transport(error)),
            JobKind::Load => Finished::Loaded(Err(error)),
            JobKind::Save => Finished::Saved(Err(error)),
            JobKind::Heartbeat => Finished::Heartbeat(Err(error)),
            JobKind::RenewToken => Finished::Renewed(RenewResult::Failed(error)),
            JobKind::SaveToken => Finished::TokenSaved(Err(error)),
        }
    }
}

/// What the adapter does with one output of the agent.
#[derive(Debug)]
pub enum Step {
    /// Run this job as a task.
    Run(Job),
    /// Put this configuration in force (one atomic swap).
    Apply(Arc<CompiledConfig>),
    /// Nothing (the output was an event, logged here).
    Nothing,
}

/// Turns an output of the agent into what the adapter does; events are logged.
pub fn plan(output: Output, endpoint: &Endpoint, request_timeout: Duration) -> Step {
    match output {
        Output::LoadBackup => Step::Run(Job::LoadBackup),
        Output::Fetch {
            if_none_match,
            wait,
            timeout,
        } => {
            let request = endpoint.fetch_request(if_none_match.as_ref(), wait, timeout);
            tracing::debug!(url = %request.url, ?if_none_match, "fetching the configuration");
            Step::Run(Job::Fetch(request))
        }
        Output::Apply(config) => Step::Apply(config),
        Output::SaveBackup(bytes) => Step::Run(Job::SaveBackup(bytes)),
        Output::Heartbeat(heartbeat) => Step::Run(Job::Heartbeat(
            endpoint.heartbeat_request(&heartbeat, request_timeout),
        )),
        Output::Event(event) => {
            log_event(&event);
            if matches!(event, Event::ConnectivityRestored { .. }) {
                // Said again on every reconnect, not just at start: the start
                // may be long scrolled out of the log.
                warn_if_cleartext(endpoint, Connection::Restored);
            }
            Step::Nothing
        }
    }
}

/// A finished piece of IO, for the agent.
#[derive(Debug)]
pub enum Finished {
    /// A configuration fetch.
    Fetched(FetchResult),
    /// A backup read: the bytes, `None` when there is no file, or what failed.
    Loaded(Result<Option<Vec<u8>>, String>),
    /// A backup write.
    Saved(Result<(), String>),
    /// A heartbeat.
    Heartbeat(Result<(), String>),
    /// A token renewal (for the [`Renewer`](super::renewal::Renewer)).
    Renewed(RenewResult),
    /// A kept token write (for the [`Renewer`](super::renewal::Renewer)).
    TokenSaved(Result<(), String>),
}

impl Finished {
    /// A fetch's answer from the call's outcome.
    pub fn fetched(result: Result<Response, CalloutFailure>) -> Finished {
        Finished::Fetched(match result {
            Ok(response) => protocol::fetch_result(&response),
            Err(e) => FetchResult::Transport(e.to_string()),
        })
    }

    /// A heartbeat's answer from the call's outcome.
    pub fn heartbeat(result: Result<Response, CalloutFailure>) -> Finished {
        Finished::Heartbeat(match result {
            Ok(response) => protocol::heartbeat_result(&response),
            Err(e) => Err(e.to_string()),
        })
    }

    /// Whether handing this to the agent compiles a configuration (a snapshot or
    /// a backup's bytes): slow enough that the adapter runs it on a blocking thread.
    pub fn compiles(&self) -> bool {
        matches!(
            self,
            Finished::Fetched(FetchResult::Snapshot(_)) | Finished::Loaded(Ok(Some(_)))
        )
    }

    /// Whether this is a fetch that did not reach the management plane.
    pub fn is_failed_fetch(&self) -> bool {
        matches!(self, Finished::Fetched(FetchResult::Transport(_)))
    }

    /// Hands this to the agent.
    pub fn deliver(self, agent: &mut SyncAgent, now: Instant) {
        match self {
            Finished::Fetched(result) => agent.handle_fetch(result, now),
            Finished::Loaded(Ok(Some(bytes))) => agent.handle_backup_loaded(Ok(Some(&bytes)), now),
            Finished::Loaded(Ok(None)) => agent.handle_backup_loaded(Ok(None), now),
            Finished::Loaded(Err(error)) => agent.handle_backup_loaded(Err(error), now),
            Finished::Saved(result) => agent.handle_backup_saved(result, now),
            Finished::Heartbeat(result) => agent.handle_heartbeat_done(result, now),
            // The adapter hands these to its `Renewer` instead; the agent has no
            // part in them.
            Finished::Renewed(_) | Finished::TokenSaved(_) => {}
        }
    }
}

/// Logs an event of the agent at its severity.
pub fn log_event(event: &Event) {
    match event.severity() {
        Severity::Debug => tracing::debug!("{event}"),
        Severity::Info => tracing::info!("{event}"),
        Severity::Warn => tracing::warn!("{event}"),
        Severity::Error => tracing::error!("{event}"),
    }
}

/// When a connection to the management plane is (about to be) made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// At start, before the first fetch.
    Start,
    /// A fetch succeeded after failures.
    Restored,
}

/// What to warn when the management URL is plain HTTP to another machine, or
/// `None` when it is HTTPS or this machine.
pub fn cleartext_warning(endpoint: &Endpoint) -> Option<String> {
    endpoint.is_cleartext_remote().then(|| {
        format!(
            "the management URL {} is plain HTTP to another machine: configuration \
             snapshots (with subscription keys and secret named values) and the gateway \
             token cross the network unencrypted. Use an https:// --management-url: serve \
             the management plane with `portcullis management --tls-cert FILE --tls-key FILE` \
             (or `--self-signed` for trials, and give the gateway `--ca` with its CA)",
            endpoint.base_url()
        )
    })
}

/// Warns (see [`cleartext_warning`]) when the management URL sends secrets in
/// the clear over the network.
pub fn warn_if_cleartext(endpoint: &Endpoint, when: Connection) {
    if let Some(warning) = cleartext_warning(endpoint) {
        let reconnected = when == Connection::Restored;
        tracing::warn!(url = endpoint.base_url(), reconnected, "{warning}");
    }
}

/// Logs how connected mode starts and warns about a management URL that is plain
/// HTTP to another machine. (The token's expiry is warned about by the
/// [`Renewer`](super::renewal::Renewer), at start and then daily.)
pub fn log_start(endpoint: &Endpoint, instance_id: &str, backup: Option<&Path>) {
    tracing::info!(
        url = endpoint.base_url(),
        gateway_id = endpoint.gateway_id(),
        instance_id = %instance_id,
        backup = ?backup,
        "connected mode: configuration comes from the management plane"
    );
    warn_if_cleartext(endpoint, Connection::Start);
}

/// Logs that the agent failed (panicked) and the sync task stops.
pub fn log_agent_failed() {
    tracing::error!(
        "the sync agent failed; configuration updates stop, the configuration in force stays"
    );
}

/// The host name to report: the first candidate that is not blank (trimmed),
/// else `unknown`. The adapter reads the candidates (`$HOSTNAME`, the kernel's).
pub fn pick_hostname(candidates: impl IntoIterator<Item = Option<String>>) -> String {
    candidates
        .into_iter()
        .flatten()
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::sync::token::sign;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::new(url, &sign("gw-1", 1_900_000_000, b"k")).unwrap()
    }

    #[test]
    fn the_cleartext_warning_names_the_url_and_how_to_turn_on_tls() {
        let warning = cleartext_warning(&endpoint("http://192.0.2.1:8090")).unwrap();
        for needle in [
            "http://192.0.2.1:8090",
            "plain HTTP",
            "subscription keys",
            "https://",
            "--tls-cert",
            "--self-signed",
        ] {
            assert!(warning.contains(needle), "{needle}: {warning}");
        }
        for quiet in [
            "http://127.0.0.1:8090",
            "http://localhost:8090",
            "http://[::1]:8090",
            "https://192.0.2.1:8443",
        ] {
            assert_eq!(cleartext_warning(&endpoint(quiet)), None, "{quiet}");
        }
    }
}
