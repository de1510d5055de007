//! Connected mode: drives the core's sync agent. Fetches and heartbeats go to the
//! management plane through the callout client, the backup file is read and
//! written as blocking work, each applied configuration is put in force, and
//! every decision (when, what, whether to apply) is the agent's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_channel::Sender;
use futures_lite::FutureExt;
use portcullis_core::callout::CalloutLimits;
use portcullis_core::sync::protocol::{Endpoint, EndpointError};
use portcullis_core::sync::token_file::{TokenKeeper, TOKEN_FILE_NAME};
use portcullis_core::sync::{AgentSetup, Output, SyncAgent, SyncSettings, SyncStatus};

use crate::backup_file::BackupFile;
use crate::callout::Callouts;
use crate::options::{ManagedOptions, MAX_SNAPSHOT_BYTES};
use crate::runtime::{random_bytes, sleep_until, Runtime};
use crate::shared_config::SharedConfig;
use crate::stop::Stop;
use crate::upstream::{Connector, TlsSetupError};

pub mod credential;
pub mod jobs;
pub mod renewal;

use credential::Credential;
use jobs::{Finished, Job, Step};
use renewal::Renewer;

/// Why connected mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncSetupError {
    /// The URL or token is unusable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The CA file could not be used.
    #[error("management plane CA: {0}")]
    Tls(#[from] TlsSetupError),
    /// The backup directory could not be created or cleaned.
    #[error("backup directory {dir}: {source}")]
    BackupDir {
        /// The directory.
        dir: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The OS gave no random bytes.
    #[error("the operating system's random source failed")]
    Random,
}

/// A sync task ready to run: what it needs, checked before the gateway binds.
pub(crate) struct Sync<R: Runtime> {
    endpoint: Endpoint,
    /// The token every clone of `endpoint` sends, renewed in place.
    credential: Arc<Credential>,
    callouts: Callouts<R>,
    backup: Option<BackupFile>,
    settings: SyncSettings,
    seed: u64,
    rt: R,
    /// Keeps renewed tokens next to the backup, when there is one.
    keeper: Option<(TokenKeeper, BackupFile)>,
    renewal_seed: u64,
    /// The shared-state store's health, for the heartbeat.
    store_stats: Option<Arc<crate::store::stats::StoreStats>>,
}

impl<R: Runtime> Sync<R> {
    /// Checks the URL, token, CA and backup directory.
    pub(crate) async fn prepare(options: &ManagedOptions, rt: &R) -> Result<Self, SyncSetupError> {
        // Checked before a kept token may take its place.
        Endpoint::new(&options.url, &options.token)?;
        let connector = Connector::new(rt.clone(), options.ca.as_deref())?;
        let callouts = Callouts::with_connector(connector).with_limits(CalloutLimits {
            max_body_bytes: MAX_SNAPSHOT_BYTES,
            ..CalloutLimits::default()
        });
        let random: [u8; 32] = random_bytes(rt).ok_or(SyncSetupError::Random)?;
        let AgentSetup { settings, seed } =
            crate::setup::agent_setup(options, random, system_hostname);
        let backup = match &options.backup {
            Some(b) => {
                let file = BackupFile::on(rt.disk(), &b.dir);
                let prepared = file.clone();
                rt.blocking(move || prepared.prepare())
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|source| SyncSetupError::BackupDir {
                        dir: b.dir.clone(),
                        source,
                    })?;
                Some(file)
            }
            None => None,
        };
        let extra: [u8; 20] = random_bytes(rt).ok_or(SyncSetupError::Random)?;
        let (nonce_base, renewal_seed) = renewal::split_random(extra);
        let mut token = options.token.clone();
        let keeper = match (&options.backup, &backup) {
            (Some(b), Some(file)) => {
                let kept_file = file.sibling(TOKEN_FILE_NAME);
                let reader = kept_file.clone();
                let kept = rt
                    .blocking(move || reader.read().map_err(|e| e.to_string()))
                    .await
                    .and_then(|r| r);
                token = renewal::pick_start_token(
                    &options.token,
                    kept,
                    &b.key,
                    &kept_file.path(),
                    wall_unix(rt),
                );
                Some((
                    TokenKeeper::new(b.key.clone(), &options.token, nonce_base),
                    kept_file,
                ))
            }
            _ => None,
        };
        let (endpoint, credential) = Credential::attach(Endpoint::new(&options.url, &token)?);
        Ok(Sync {
            endpoint,
            credential,
            callouts,
            backup,
            settings,
            seed,
            rt: rt.clone(),
            keeper,
            renewal_seed,
            store_stats: None,
        })
    }

    /// The gateway id the token is for.
    pub(crate) fn gateway_id(&self) -> &str {
        self.endpoint.gateway_id()
    }

    /// This process' instance id.
    pub(crate) fn instance_id(&self) -> &str {
        &self.settings.instance_id
    }

    /// The gateway token in use (renewed in place), for its gauges.
    pub(crate) fn credential(&self) -> &Arc<Credential> {
        &self.credential
    }

    /// The management plane's endpoint and the callouts that reach it (for
    /// telemetry upload).
    pub(crate) fn management(&self) -> (Endpoint, Callouts<R>) {
        (self.endpoint.clone(), self.callouts.clone())
    }

    /// Reports the shared-state store's health in the heartbeat.
    pub(crate) fn with_store_stats(mut self, stats: Arc<crate::store::stats::StoreStats>) -> Self {
        self.store_stats = Some(stats);
        self
    }

    /// Starts the agent and its task; the task puts each applied configuration
    /// in `shared` until `stop`.
    pub(crate) fn spawn(self, shared: Arc<SharedConfig>, stop: Stop) -> Arc<Mutex<SyncStatus>> {
        let backup_path = self.backup.as_ref().map(BackupFile::path);
        jobs::log_start(
            &self.endpoint,
            &self.settings.instance_id,
            backup_path.as_deref(),
        );
        let request_timeout = self.settings.timing.request_timeout;
        let (keeper, token_file) = self
            .keeper
            .map_or((None, None), |(k, f)| (Some(k), Some(f)));
        let renewer = Renewer::new(
            self.endpoint.clone(),
            self.credential.clone(),
            keeper,
            self.renewal_seed,
            wall_unix(&self.rt),
            request_timeout,
        );
        let agent = Box::new(SyncAgent::new(self.settings, self.seed, self.rt.now()));
        let status = Arc::new(Mutex::new(agent.status()));
        let callouts = self.callouts.clone();
        let reap_stop = stop.clone();
        self.rt.spawn(async move { callouts.reap(reap_stop).await });
        let ctx = Context {
            endpoint: self.endpoint,
            callouts: self.callouts,
            backup: self.backup,
            token_file,
            shared,
            status: status.clone(),
            request_timeout,
            rt: self.rt.clone(),
            store_stats: self.store_stats,
            #[cfg(feature = "sabotage")]
            saves: std::cell::Cell::new(0),
        };
        self.rt.spawn(run(agent, renewer, ctx, stop));
        status
    }
}

struct Context<R: Runtime> {
    endpoint: Endpoint,
    callouts: Callouts<R>,
    backup: Option<BackupFile>,
    /// Where renewed tokens are kept (beside the backup).
    token_file: Option<BackupFile>,
    shared: Arc<SharedConfig>,
    status: Arc<Mutex<SyncStatus>>,
    request_timeout: Duration,
    rt: R,
    /// The shared-state store's health, for the heartbeat.
    store_stats: Option<Arc<crate::store::stats::StoreStats>>,
    /// Backup writes asked for (for `Sabotage::skip_some_backup_writes`).
    #[cfg(feature = "sabotage")]
    saves: std::cell::Cell<u64>,
}

/// What woke the sync task.
enum Wake {
    Stop,
    Done(Finished),
    Timer,
}

async fn run<R: Runtime>(
    mut agent: Box<SyncAgent>,
    mut renewer: Renewer,
    ctx: Context<R>,
    stop: Stop,
) {
    let rt = ctx.rt.clone();
    let (tx, rx) = async_channel::unbounded::<Finished>();
    loop {
        // The state is published before the outputs are performed, so whoever sees
        // a configuration in force also sees the status that goes with it.
        let outputs: Vec<Output> = std::iter::from_fn(|| agent.poll_output()).collect();
        *ctx.status.lock().unwrap_or_else(|e| e.into_inner()) = agent.status();
        for mut output in outputs {
            if let (Output::Heartbeat(hb), Some(stats)) = (&mut output, &ctx.store_stats) {
                hb.state_store = stats.health().map(Box::new);
            }
            match jobs::plan(output, &ctx.endpoint, ctx.request_timeout) {
                Step::Run(job) => spawn_job(job, &ctx, &tx),
                Step::Apply(config) => ctx.shared.store_shared(config),
                Step::Nothing => {}
            }
        }
        for job in renewer.jobs() {
            spawn_job(job, &ctx, &tx);
        }
        let agent_deadline = agent.poll_timeout();
        let deadline = renewer.next_wake(agent_deadline, rt.now(), wall_unix(&rt));
        let wake = futures_lite::future::or(
            async {
                stop.cancelled().await;
                Wake::Stop
            },
            futures_lite::future::or(
                async {
                    match rx.recv().await {
                        Ok(done) => Wake::Done(done),
                        // `tx` lives as long as this loop.
                        Err(_) => Wake::Stop,
                    }
                },
                async {
                    sleep_until(&rt, deadline).await;
                    Wake::Timer
                },
            ),
        )
        .await;
        match wake {
            Wake::Stop => return,
            Wake::Timer => {
                // One timer for both machines: each is told only when it is due.
                renewer.handle_wake(&mut agent, agent_deadline, rt.now(), wall_unix(&rt));
            }
            Wake::Done(done) => {
                #[cfg(feature = "sabotage")]
                if done.is_failed_fetch() && sabotage::after_failed_fetch(&ctx) {
                    return;
                }
                renewer.observe(&done);
                if Renewer::owns(&done) {
                    renewer.handle(done, wall_unix(&rt));
                    continue;
                }
                match handle(agent, done, &rt).await {
                    Some(a) => agent = a,
                    None => {
                        jobs::log_agent_failed();
                        return;
                    }
                }
            }
        }
    }
}

/// Hands a finished piece of IO to the agent; compiling ones run as blocking
/// work. `None` if the agent panicked.
async fn handle<R: Runtime>(
    mut agent: Box<SyncAgent>,
    done: Finished,
    rt: &R,
) -> Option<Box<SyncAgent>> {
    if !done.compiles() {
        done.deliver(&mut agent, rt.now());
        return Some(agent);
    }
    let clock = rt.clone();
    rt.blocking(move || {
        let mut agent = agent;
        done.deliver(&mut agent, clock.now());
        agent
    })
    .await
    .ok()
}

/// Runs `job` as a task that answers the agent through `tx` (with the job's
/// failure if the task panics); nothing when there is no backup file.
fn spawn_job<R: Runtime>(job: Job, ctx: &Context<R>, tx: &Sender<Finished>) {
    let kind = job.kind();
    let rt = ctx.rt.clone();
    let io = match job {
        Job::LoadBackup => {
            let Some(file) = ctx.backup.clone() else {
                return;
            };
            async move {
                #[cfg(feature = "sabotage")]
                if rt.sabotage().ignore_backup_at_start {
                    return Finished::Loaded(Ok(None));
                }
                let read = rt.blocking(move || file.read()).await;
                #[cfg(feature = "sabotage")]
                let read = sabotage::after_backup_read(&rt, read);
                Finished::Loaded(match read {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e),
                })
            }
            .boxed()
        }
        Job::Fetch(request) => {
            let callouts = ctx.callouts.clone();
            async move { Finished::fetched(callouts.perform(request).await) }.boxed()
        }
        Job::SaveBackup(bytes) => {
            let Some(file) = ctx.backup.clone() else {
                return;
            };
            #[cfg(feature = "sabotage")]
            let skip = sabotage::skip_backup_write(ctx);
            async move {
                #[cfg(feature = "sabotage")]
                if skip {
                    return Finished::Saved(Ok(()));
                }
                #[cfg(feature = "sabotage")]
                let in_place = rt.sabotage().write_backup_in_place;
                let written = rt
                    .blocking(move || {
                        #[cfg(feature = "sabotage")]
                        if in_place {
                            return file.overwrite_unsynced(&bytes);
                        }
                        file.write_atomically(&bytes)
                    })
                    .await;
                Finished::Saved(flatten(written))
            }
            .boxed()
        }
        Job::Heartbeat(request) => {
            let callouts = ctx.callouts.clone();
            async move { Finished::heartbeat(callouts.perform(request).await) }.boxed()
        }
        Job::RenewToken(request) => {
            let callouts = ctx.callouts.clone();
            async move { Finished::Renewed(renewal::renew_result(callouts.perform(request).await)) }
                .boxed()
        }
        Job::SaveToken(bytes) => {
            let Some(file) = ctx.token_file.clone() else {
                return;
            };
            async move {
                let written = rt.blocking(move || file.write_atomically(&bytes)).await;
                Finished::TokenSaved(flatten(written))
            }
            .boxed()
        }
    };
    let tx = tx.clone();
    ctx.rt.spawn(async move {
        let done = std::panic::AssertUnwindSafe(io)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| kind.failed("task failed".to_owned()));
        let _ = tx.send(done).await;
    });
}

/// A blocking write's outcome as the agent takes it.
fn flatten(written: Result<std::io::Result<()>, String>) -> Result<(), String> {
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e),
    }
}

/// The wall clock in Unix seconds (token expiries are wall-clock times).
fn wall_unix<R: Runtime>(rt: &R) -> u64 {
    rt.wall_clock()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The host name: `$HOSTNAME`, else the kernel's, else `unknown`.
fn system_hostname() -> String {
    let files = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .map(|path| std::fs::read_to_string(path).ok());
    jobs::pick_hostname(std::iter::once(std::env::var("HOSTNAME").ok()).chain(files))
}

/// The sync agent's fault switches (`Sabotage`), simulation only.
#[cfg(feature = "sabotage")]
mod sabotage {
    use portcullis_core::config::{CompiledConfig, Snapshot};

    use super::Context;
    use crate::runtime::Runtime;

    /// After a failed fetch: whether to stop syncing
    /// (`stop_after_failed_fetch`); drops the configuration in force
    /// (`forget_config_on_failed_fetch`).
    pub(super) fn after_failed_fetch<R: Runtime>(ctx: &Context<R>) -> bool {
        let sabotage = ctx.rt.sabotage();
        if sabotage.stop_after_failed_fetch {
            return true;
        }
        if sabotage.forget_config_on_failed_fetch {
            if let Ok(empty) =
                Snapshot::from_json(br#"{"revision":0}"#).and_then(CompiledConfig::compile)
            {
                ctx.shared.store(empty);
            }
        }
        false
    }

    /// `skip_backup_checksum`: makes any checksum of the backup just `read`
    /// pass by replacing it with the one the bytes have.
    pub(super) fn after_backup_read<R: Runtime>(
        rt: &R,
        read: Result<std::io::Result<Option<Vec<u8>>>, String>,
    ) -> Result<std::io::Result<Option<Vec<u8>>>, String> {
        use portcullis_core::sync::backup::CHECKSUM_LEN;
        match read {
            Ok(Ok(Some(mut bytes))) if rt.sabotage().skip_backup_checksum => {
                if let Some(end) = bytes.len().checked_sub(CHECKSUM_LEN) {
                    let sum = ring::digest::digest(&ring::digest::SHA256, &bytes[..end]);
                    bytes[end..].copy_from_slice(sum.as_ref());
                }
                Ok(Ok(Some(bytes)))
            }
            other => other,
        }
    }

    /// `skip_some_backup_writes`: whether to skip this backup write (every
    /// other one).
    pub(super) fn skip_backup_write<R: Runtime>(ctx: &Context<R>) -> bool {
        let n = ctx.saves.get();
        ctx.saves.set(n + 1);
        ctx.rt.sabotage().skip_some_backup_writes && n % 2 == 1
    }
}
