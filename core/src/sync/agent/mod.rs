//! The sync agent: keeps a gateway's configuration in step with the management
//! plane, without IO.
//!
//! It decides when to fetch (a long poll right after each answer, plain polls when
//! the server ignores `wait` or a snapshot was rejected, jittered exponential
//! backoff after failures), compiles what it fetches and hands out the compiled
//! configuration whole, keeps a rejected snapshot out, seals each applied snapshot
//! into a backup file and opens the backup at start, sends heartbeats, and tracks
//! connectivity. The adapter performs the IO it asks for:
//!
//! ```text
//! SyncAgent::new(settings, seed, now)
//! poll_output() -> LoadBackup | Fetch | Apply | SaveBackup | Heartbeat | Event
//! handle_backup_loaded / handle_fetch / handle_heartbeat_done / handle_backup_saved (result, now)
//! poll_timeout() -> when to call handle_timeout(now)
//! ```
//!
//! `handle_fetch` with a snapshot and `handle_backup_loaded` with a file compile a
//! configuration: the adapter calls them off its request-serving threads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::backoff::Backoff;
use super::backup::{self, BackupError, NonceSequence};
use super::backup_key::BackupKey;
use super::content::ContentId;
use super::event::{Event, Origin};
use super::heartbeat::{BackupStatus, Connectivity, Health, Heartbeat};
use super::settings::{SyncSettings, SyncTiming};
use super::signature::PublicKey;
use super::trust::{Accepted, Trust};
use crate::config::{CompiledConfig, Snapshot};

mod invariants;

/// Long polls answered early without a change, in a row and with no failure
/// between them, before the agent takes the server for one that ignores `wait`.
/// One is not enough: a plane shutting down (or a proxy closing idle requests)
/// ends a long poll early once.
pub const EARLY_ANSWERS_BEFORE_POLLING: u32 = 3;
/// How a configuration fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResult {
    /// 200: the snapshot JSON, unsigned.
    Snapshot(Bytes),
    /// 200: the snapshot JSON and its `Portcullis-Signature` header value.
    SignedSnapshot {
        /// The snapshot JSON, as received.
        body: Bytes,
        /// The signature header's value.
        signature: String,
        /// The `Portcullis-Signing-Key` header's value, if sent: the key a
        /// gateway without a configured one pins on first use.
        signing_key: Option<String>,
    },
    /// 304: the revision asked about is still current.
    NotModified,
    /// 401 (or 403): the token was refused; the server's explanation.
    Unauthorized(String),
    /// Any other status.
    Status {
        /// The status code.
        status: u16,
        /// The server's explanation, or the start of the body.
        detail: String,
    },
    /// No response: name resolution, connection, TLS, timeout or a broken response.
    Transport(String),
}

/// What the agent asks the adapter to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Read the backup file and call [`SyncAgent::handle_backup_loaded`].
    LoadBackup,
    /// Fetch the configuration and call [`SyncAgent::handle_fetch`].
    Fetch {
        /// Send `If-None-Match` with this content's ETag (`"<revision>-<digest>"`).
        if_none_match: Option<ContentId>,
        /// Ask the server to hold the request this long (`?wait=`): a long poll.
        wait: Option<Duration>,
        /// Give up on the request after this long.
        timeout: Duration,
    },
    /// Put this configuration in force (one atomic swap).
    Apply(Arc<CompiledConfig>),
    /// Write these bytes to the backup file atomically and call
    /// [`SyncAgent::handle_backup_saved`].
    SaveBackup(Vec<u8>),
    /// Send this heartbeat and call [`SyncAgent::handle_heartbeat_done`].
    Heartbeat(Heartbeat),
    /// Log this.
    Event(Event),
}

/// The agent's state, for probes, tests and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Whether the last fetch reached the management plane.
    pub connectivity: Connectivity,
    /// The revision in force.
    pub applied_revision: Option<u64>,
    /// The store identity of the configuration in force, if it carries one.
    pub applied_store_id: Option<String>,
    /// The content digest of the configuration in force, if it carries one.
    pub applied_digest: Option<String>,
    /// Serving, and how well.
    pub health: Health,
    /// What became of the backup.
    pub backup: BackupStatus,
    /// Why the latest fetched snapshot was not applied.
    pub compile_errors: Vec<String>,
    /// Why the last fetch failed, while it is failing.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum FetchState {
    /// The next fetch is due then.
    Due(Instant),
    /// A fetch is under way.
    InFlight {
        started: Instant,
        wait: Option<Duration>,
    },
}

#[derive(Debug)]
struct Rejected {
    revision: Option<u64>,
    /// The rejected snapshot's identity, when it could be read.
    id: Option<ContentId>,
    error: String,
}

#[derive(Debug)]
struct BackupState {
    key: BackupKey,
    /// This gateway's id, which files are bound to.
    gateway_id: String,
    nonces: NonceSequence,
    status: BackupStatus,
    /// The load asked for at start has not been answered: saves wait for it, so
    /// a file that turns out to be another gateway's is never overwritten.
    loading: bool,
    /// The file on disk belongs to another gateway: nothing is written over it
    /// until an operator removes it (and this process restarts).
    foreign: bool,
    /// The revision being saved.
    saving: Option<u64>,
    /// The newest sealed file waiting for the save under way to finish.
    pending: Option<(u64, Vec<u8>)>,
}

/// The sans-IO sync agent of one gateway process.
#[derive(Debug)]
pub struct SyncAgent {
    timing: SyncTiming,
    instance_id: String,
    hostname: String,
    version: String,
    started: Instant,
    backoff: Backoff,
    connectivity: Connectivity,
    applied: Option<ContentId>,
    rejected: Option<Rejected>,
    last_error: Option<String>,
    fetch: FetchState,
    long_poll_paused_until: Option<Instant>,
    /// Long polls answered early in a row (see [`EARLY_ANSWERS_BEFORE_POLLING`]).
    early_answers: u32,
    heartbeat_due: Option<Instant>,
    heartbeat_in_flight: bool,
    backup: Option<BackupState>,
    /// The key snapshots must be signed with: configured, pinned, or none yet.
    trust: Trust,
    /// A snapshot fetched while the backup was still loading, without a
    /// configured key: it waits, because the backup may hold a pin it must
    /// match (and trusting it first would let any plane replace the pin).
    deferred: Option<Deferred>,
    outputs: VecDeque<Output>,
}

impl SyncAgent {
    /// A new agent: it asks at once for the backup (when one is configured) and
    /// for the first fetch. `seed` (random, from the OS) drives the backoff jitter.
    pub fn new(settings: SyncSettings, seed: u64, now: Instant) -> SyncAgent {
        let backup = settings.backup.map(|b| BackupState {
            key: b.key,
            gateway_id: b.gateway_id,
            foreign: false,
            nonces: NonceSequence::new(b.nonce_seed),
            status: BackupStatus::None,
            loading: true,
            saving: None,
            pending: None,
        });
        let mut agent = SyncAgent {
            timing: settings.timing,
            instance_id: settings.instance_id,
            hostname: settings.hostname,
            version: settings.version,
            started: now,
            backoff: Backoff::new(settings.timing.backoff, seed),
            connectivity: Connectivity::Starting,
            applied: None,
            rejected: None,
            last_error: None,
            fetch: FetchState::Due(now),
            long_poll_paused_until: None,
            early_answers: 0,
            heartbeat_due: None,
            heartbeat_in_flight: false,
            backup,
            trust: Trust::new(settings.management_keys),
            deferred: None,
            outputs: VecDeque::new(),
        };
        if agent.backup.is_some() {
            agent.outputs.push_back(Output::LoadBackup);
        }
        agent.drive(now);
        agent
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let fetch = match self.fetch {
            FetchState::Due(at) => Some(at),
            FetchState::InFlight { .. } => None,
        };
        let heartbeat = if self.heartbeat_in_flight {
            None
        } else {
            self.heartbeat_due
        };
        match (fetch, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A deadline from [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }

    /// The configuration fetch asked for by [`Output::Fetch`] ended.
    pub fn handle_fetch(&mut self, result: FetchResult, now: Instant) {
        let FetchState::InFlight { started, wait } = self.fetch else {
            return;
        };
        if self.deferred.is_some() {
            // This fetch was answered already: its snapshot waits for the
            // backup. A second answer is one nobody asked for.
            return;
        }
        let deferred = |body, signature, signing_key| Deferred {
            body,
            signature,
            signing_key,
            started,
            wait,
        };
        match result {
            FetchResult::Snapshot(body) => {
                self.succeeded(now);
                self.take_or_defer(deferred(body, None, None), now);
            }
            FetchResult::SignedSnapshot {
                body,
                signature,
                signing_key,
            } => {
                self.succeeded(now);
                self.take_or_defer(deferred(body, Some(signature), signing_key), now);
            }
            FetchResult::NotModified => {
                self.succeeded(now);
                self.unchanged(started, wait, now);
            }
            FetchResult::Unauthorized(detail) => self.failed(Failure::Unauthorized(detail), now),
            FetchResult::Status { status, detail } => {
                self.failed(Failure::Other(format!("status {status}: {detail}")), now)
            }
            FetchResult::Transport(error) => self.failed(Failure::Other(error), now),
        }
        // The first heartbeat goes out as soon as the first fetch has ended.
        if self.heartbeat_due.is_none() {
            self.heartbeat_due = Some(now);
        }
        self.drive(now);
    }

    /// The backup file asked for by [`Output::LoadBackup`]: its bytes, `None` when
    /// there is no file, or why it could not be read.
    pub fn handle_backup_loaded(&mut self, file: Result<Option<&[u8]>, String>, now: Instant) {
        let Some(state) = self.backup.as_mut().filter(|b| b.loading) else {
            return;
        };
        state.loading = false;
        let key = state.key.clone();
        let gateway_id = state.gateway_id.clone();
        match file {
            Err(error) => self.backup_rejected(format!("cannot read the backup file: {error}")),
            Ok(None) => self.outputs.push_back(Output::Event(Event::BackupMissing)),
            Ok(Some(bytes)) => {
                let trusted = !self.trust.keys().is_empty();
                match backup::open_trusted(bytes, &key, &gateway_id, &mut self.trust) {
                    Err(error @ BackupError::OtherGateway { .. }) => {
                        if let Some(state) = &mut self.backup {
                            state.foreign = true;
                            state.pending = None;
                        }
                        self.backup_rejected(error.to_string());
                    }
                    Err(error) => self.backup_rejected(error.to_string()),
                    // Whatever a fetch put in force is newer than the backup.
                    Ok(snapshot) if self.applied.is_some() => {
                        self.outputs.push_back(Output::Event(Event::BackupStale {
                            revision: snapshot.revision,
                        }))
                    }
                    Ok(snapshot) => {
                        self.pinned_from_backup(trusted);
                        let id = ContentId::of(&snapshot);
                        match CompiledConfig::compile(snapshot) {
                            Ok(config) => {
                                self.apply(config, id, Origin::Backup);
                                if let Some(state) = &mut self.backup {
                                    state.status = BackupStatus::Loaded;
                                }
                            }
                            Err(error) => self
                                .backup_rejected(BackupError::Invalid(Box::new(error)).to_string()),
                        }
                    }
                }
            }
        }
        // A snapshot fetched meanwhile, now that the backup's pin is known.
        if let Some(deferred) = self.deferred.take() {
            self.take_signed(deferred, now);
        }
        // A save that waited for the load.
        if let Some(state) = self.backup.as_mut().filter(|b| b.saving.is_none()) {
            if let Some((revision, file)) = state.pending.take() {
                state.saving = Some(revision);
                self.outputs.push_back(Output::SaveBackup(file));
            }
        }
        self.drive(now);
    }

    /// The save asked for by [`Output::SaveBackup`] ended.
    pub fn handle_backup_saved(&mut self, result: Result<(), String>, now: Instant) {
        let Some(state) = &mut self.backup else {
            return;
        };
        let Some(revision) = state.saving.take() else {
            return;
        };
        let event = match result {
            Ok(()) => {
                state.status = BackupStatus::Saved;
                Event::BackupSaved { revision }
            }
            Err(error) => {
                state.status = BackupStatus::Error(format!("save failed: {error}"));
                Event::BackupSaveFailed { revision, error }
            }
        };
        self.outputs.push_back(Output::Event(event));
        if let Some((revision, file)) = state.pending.take() {
            state.saving = Some(revision);
            self.outputs.push_back(Output::SaveBackup(file));
        }
        self.drive(now);
    }

    /// The heartbeat asked for by [`Output::Heartbeat`] ended.
    pub fn handle_heartbeat_done(&mut self, result: Result<(), String>, now: Instant) {
        if !self.heartbeat_in_flight {
            return;
        }
        self.heartbeat_in_flight = false;
        if let Err(error) = result {
            let disconnected = self.connectivity == Connectivity::Disconnected;
            self.outputs
                .push_back(Output::Event(Event::HeartbeatFailed {
                    error,
                    disconnected,
                }));
        }
        self.drive(now);
    }

    /// Whether the last fetch reached the management plane.
    pub fn connectivity(&self) -> Connectivity {
        self.connectivity
    }

    /// The revision in force.
    pub fn applied_revision(&self) -> Option<u64> {
        self.applied.as_ref().map(|id| id.revision)
    }

    /// The content identity of the configuration in force.
    pub fn applied_content(&self) -> Option<&ContentId> {
        self.applied.as_ref()
    }

    /// The agent's state.
    pub fn status(&self) -> SyncStatus {
        SyncStatus {
            connectivity: self.connectivity,
            applied_revision: self.applied_revision(),
            applied_store_id: self.applied.as_ref().and_then(|id| id.store_id.clone()),
            applied_digest: self.applied.as_ref().and_then(|id| id.digest.clone()),
            health: self.health(),
            backup: self.backup_status(),
            compile_errors: self.compile_errors(),
            last_error: self.last_error.clone(),
        }
    }

    /// The heartbeat as it would be sent now.
    pub fn heartbeat(&self, now: Instant) -> Heartbeat {
        Heartbeat {
            instance_id: self.instance_id.clone(),
            hostname: self.hostname.clone(),
            version: self.version.clone(),
            applied_revision: self.applied_revision(),
            applied_digest: self.applied.as_ref().and_then(|id| id.digest.clone()),
            store_id: self.applied.as_ref().and_then(|id| id.store_id.clone()),
            uptime_seconds: now.saturating_duration_since(self.started).as_secs(),
            health: self.health(),
            connectivity: self.connectivity,
            compile_errors: self.compile_errors(),
            backup: self.backup_status(),
            state_store: None,
        }
    }

    fn health(&self) -> Health {
        let backup_failed = matches!(self.backup_status(), BackupStatus::Error(_));
        if self.applied.is_none() {
            Health::NotReady
        } else if self.rejected.is_some()
            || backup_failed
            || self.connectivity == Connectivity::Disconnected
        {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    fn backup_status(&self) -> BackupStatus {
        self.backup
            .as_ref()
            .map_or(BackupStatus::None, |b| b.status.clone())
    }

    fn compile_errors(&self) -> Vec<String> {
        match &self.rejected {
            Some(Rejected {
                revision: Some(r),
                error,
                ..
            }) => vec![format!("revision {r}: {error}")],
            Some(Rejected {
                revision: None,
                error,
                ..
            }) => vec![error.clone()],
            None => Vec::new(),
        }
    }

    /// Emits what is due: the next fetch, the next heartbeat.
    fn drive(&mut self, now: Instant) {
        if let FetchState::Due(at) = self.fetch {
            if at <= now {
                let if_none_match = self.applied.clone();
                let wait = (self.connectivity == Connectivity::Connected
                    && if_none_match.is_some()
                    && self.rejected.is_none()
                    && self.long_poll_available(now))
                .then_some(self.timing.long_poll_wait);
                let timeout = self.timing.request_timeout + wait.unwrap_or_default();
                self.outputs.push_back(Output::Fetch {
                    if_none_match,
                    wait,
                    timeout,
                });
                self.fetch = FetchState::InFlight { started: now, wait };
            }
        }
        if !self.heartbeat_in_flight && self.heartbeat_due.is_some_and(|at| at <= now) {
            self.outputs
                .push_back(Output::Heartbeat(self.heartbeat(now)));
            self.heartbeat_in_flight = true;
            self.heartbeat_due = Some(now + self.timing.heartbeat_interval);
        }
        crate::machine::debug_check(self);
    }

    fn long_poll_available(&mut self, now: Instant) -> bool {
        match self.long_poll_paused_until {
            Some(until) if now < until => false,
            Some(_) => {
                self.long_poll_paused_until = None;
                true
            }
            None => true,
        }
    }

    /// A fetch was answered (200 or 304).
    fn succeeded(&mut self, now: Instant) {
        let failures = self.backoff.failures();
        self.backoff.reset();
        self.last_error = None;
        match self.connectivity {
            Connectivity::Starting => self.outputs.push_back(Output::Event(Event::Connected)),
            Connectivity::Disconnected => {
                self.outputs
                    .push_back(Output::Event(Event::ConnectivityRestored { failures }));
                // A plane back from a restart is likely a new or upgraded one:
                // long poll it at once rather than keep polling for minutes.
                self.long_poll_paused_until = None;
                // Tell the management plane soon that this instance is back.
                if self.heartbeat_due.is_some() {
                    self.heartbeat_due = Some(now);
                }
            }
            Connectivity::Connected => {}
        }
        self.connectivity = Connectivity::Connected;
    }

    /// A fetch failed: back off. A gateway with nothing to serve retries at least
    /// as often as it would poll: it is useless until the management plane answers.
    fn failed(&mut self, failure: Failure, now: Instant) {
        let retry_in = if self.applied.is_none() {
            self.backoff.next_delay_within(self.timing.poll_interval)
        } else {
            self.backoff.next_delay()
        };
        self.fetch = FetchState::Due(now + retry_in);
        // Early answers before an outage (a plane shutting down) say nothing
        // about whether the plane holds long polls.
        self.early_answers = 0;
        let event = match failure {
            Failure::Unauthorized(detail) => {
                self.last_error = Some(format!("unauthorized: {detail}"));
                Event::Unauthorized { detail, retry_in }
            }
            Failure::Other(error) => {
                self.last_error = Some(error.clone());
                match self.connectivity {
                    Connectivity::Disconnected => Event::FetchFailed {
                        error,
                        failures: self.backoff.failures(),
                        retry_in,
                    },
                    other => Event::ConnectivityLost {
                        error,
                        at_start: other == Connectivity::Starting,
                        retry_in,
                    },
                }
            }
        };
        self.connectivity = Connectivity::Disconnected;
        self.outputs.push_back(Output::Event(event));
    }

    /// A 200 while the backup is loading and no key is configured waits for
    /// the load (see [`SyncAgent::deferred`]); else on to [`Self::take_signed`].
    fn take_or_defer(&mut self, fetched: Deferred, now: Instant) {
        let loading = self.backup.as_ref().is_some_and(|b| b.loading);
        if loading && !matches!(self.trust, Trust::Configured(_)) {
            // The fetch stays in flight, so nothing else is fetched meanwhile.
            self.deferred = Some(fetched);
        } else {
            self.take_signed(fetched, now);
        }
    }

    /// A 200: a snapshot whose signature does not verify under the trusted key
    /// is refused like one that does not compile (the configuration in force
    /// stays, the heartbeat says why); the first signed one pins its key when
    /// none is trusted; else on to [`Self::take_snapshot`].
    fn take_signed(&mut self, fetched: Deferred, now: Instant) {
        let Deferred {
            body,
            signature,
            signing_key,
            started,
            wait,
        } = fetched;
        let verified_by =
            match self
                .trust
                .check(&body, signature.as_deref(), signing_key.as_deref())
            {
                Err(error) => return self.reject(None, None, error.to_string(), now),
                Ok(Accepted::Verified(key)) => Some(key),
                Ok(Accepted::FirstUse(key)) => {
                    self.outputs
                        .push_back(Output::Event(Event::SigningKeyPinned {
                            fingerprint: key.fingerprint(),
                            from_backup: false,
                        }));
                    self.trust.pin(key.clone());
                    Some(key)
                }
                Ok(Accepted::Rotated { from, to }) => {
                    self.outputs
                        .push_back(Output::Event(Event::SigningKeyRotated {
                            from: from.fingerprint(),
                            to: to.fingerprint(),
                        }));
                    self.trust.rotate(to.clone());
                    Some(to)
                }
                Ok(Accepted::Unverified) => None,
            };
        // An unverified signature is kept only when it cannot pass for a
        // signature with its key (see the backup's layout).
        let signature = signature
            .filter(|s| verified_by.is_some() || !s.contains(' '))
            .unwrap_or_default();
        let signed = SignedBy {
            signature,
            key: verified_by,
        };
        self.take_snapshot(&body, signed, started, wait, now)
    }

    /// After a backup opened under the trust: say so if it pinned a key.
    fn pinned_from_backup(&mut self, trusted_before: bool) {
        if !trusted_before {
            if let Some(key) = self.trust.keys().first() {
                self.outputs
                    .push_back(Output::Event(Event::SigningKeyPinned {
                        fingerprint: key.fingerprint(),
                        from_backup: true,
                    }));
            }
        }
    }

    /// A 200: apply the snapshot if it is new and compiles.
    fn take_snapshot(
        &mut self,
        body: &[u8],
        signed: SignedBy,
        started: Instant,
        wait: Option<Duration>,
        now: Instant,
    ) {
        let snapshot = match Snapshot::from_json(body) {
            Ok(snapshot) => snapshot,
            Err(error) => return self.reject(None, None, error.to_string(), now),
        };
        let revision = snapshot.revision;
        let id = ContentId::of(&snapshot);
        // Content, not the revision number, decides: a restored store may send
        // a lower or equal revision with other content, and that is applied.
        if self.applied.as_ref() == Some(&id) {
            // The server ignored If-None-Match (or this confirms the backup).
            return self.unchanged(started, wait, now);
        }
        if self
            .rejected
            .as_ref()
            .is_some_and(|r| r.id.as_ref() == Some(&id))
        {
            // Known not to compile: wait for a newer one without compiling again.
            self.fetch = FetchState::Due(now + self.timing.poll_interval);
            return;
        }
        match CompiledConfig::compile(snapshot) {
            Ok(config) => {
                self.rejected = None;
                self.apply(config, id, Origin::Management);
                if signed.key.is_none() {
                    self.outputs
                        .push_back(Output::Event(Event::Unverified { revision }));
                }
                self.save_backup(revision, body, signed);
                self.next_after_answer(now);
            }
            Err(error) => self.reject(Some(revision), Some(id), error.to_string(), now),
        }
    }

    /// A 304, or a 200 of the revision in force.
    fn unchanged(&mut self, started: Instant, wait: Option<Duration>, now: Instant) {
        // The revision in force is current: an earlier rejected one is gone.
        self.rejected = None;
        if let Some(asked) = wait {
            let answered_after = now.saturating_duration_since(started);
            if answered_after >= asked / 2 {
                self.early_answers = 0;
            } else {
                self.early_answers += 1;
            }
            if self.early_answers >= EARLY_ANSWERS_BEFORE_POLLING {
                self.early_answers = 0;
                self.long_poll_paused_until = Some(now + self.timing.long_poll_retry);
                self.outputs
                    .push_back(Output::Event(Event::LongPollIgnored {
                        asked,
                        answered_after,
                    }));
            }
        }
        self.next_after_answer(now);
    }

    /// After an answer: long poll at once, or poll after the interval.
    fn next_after_answer(&mut self, now: Instant) {
        let at = if self.applied.is_some() && self.long_poll_available(now) {
            now
        } else {
            now + self.timing.poll_interval
        };
        self.fetch = FetchState::Due(at);
    }

    /// A fetched snapshot that is not applied.
    fn reject(
        &mut self,
        revision: Option<u64>,
        id: Option<ContentId>,
        error: String,
        now: Instant,
    ) {
        self.outputs.push_back(Output::Event(Event::Rejected {
            revision,
            error: error.clone(),
        }));
        self.rejected = Some(Rejected {
            revision,
            id,
            error,
        });
        // Poll, not long poll: the server would answer at once with the same one.
        self.fetch = FetchState::Due(now + self.timing.poll_interval);
        // Report it in a heartbeat soon rather than within the minute.
        if self.heartbeat_due.is_some() {
            self.heartbeat_due = Some(now);
        }
    }

    fn apply(&mut self, config: CompiledConfig, id: ContentId, origin: Origin) {
        let revision = config.revision();
        let previous = self.applied.replace(id).map(|p| p.revision);
        self.outputs.push_back(Output::Apply(Arc::new(config)));
        self.outputs.push_back(Output::Event(Event::Applied {
            revision,
            previous,
            origin,
        }));
    }

    fn save_backup(&mut self, revision: u64, snapshot_json: &[u8], signed: SignedBy) {
        let Some(state) = &mut self.backup else {
            return;
        };
        if state.foreign {
            // Reported when the file was read (and in every heartbeat since).
            return;
        }
        let binding = backup::Binding {
            gateway_id: state.gateway_id.clone(),
            store_id: self
                .applied
                .as_ref()
                .and_then(|id| id.store_id.clone())
                .unwrap_or_default(),
            signature: signed.signature,
            signing_key: signed.key,
        };
        let nonce = state.nonces.next_nonce();
        match backup::seal(revision, snapshot_json, &binding, &state.key, nonce) {
            Ok(file) if state.saving.is_some() || state.loading => {
                state.pending = Some((revision, file))
            }
            Ok(file) => {
                state.saving = Some(revision);
                self.outputs.push_back(Output::SaveBackup(file));
            }
            Err(error) => {
                state.status = BackupStatus::Error(error.to_string());
                self.outputs
                    .push_back(Output::Event(Event::BackupSaveFailed {
                        revision,
                        error: error.to_string(),
                    }));
            }
        }
    }

    fn backup_rejected(&mut self, error: String) {
        if let Some(state) = &mut self.backup {
            state.status = BackupStatus::Error(error.clone());
        }
        self.outputs
            .push_back(Output::Event(Event::BackupRejected { error }));
    }
}

/// A fetched snapshot on its way to being applied.
#[derive(Debug)]
struct Deferred {
    body: Bytes,
    signature: Option<String>,
    signing_key: Option<String>,
    started: Instant,
    wait: Option<Duration>,
}

/// How an accepted snapshot was signed, for its backup.
struct SignedBy {
    /// The signature header as received (empty when none is kept).
    signature: String,
    /// The trusted key it verified under; `None` when unverified.
    key: Option<PublicKey>,
}

enum Failure {
    Unauthorized(String),
    Other(String),
}
