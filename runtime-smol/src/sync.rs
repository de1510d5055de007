//! Connected mode: drives the core's sync agent. Fetches and heartbeats go to the
//! management plane through the callout client, the backup file is read and
//! written with smol's file API, each applied configuration is put in force, and
//! every decision (when, what, whether to apply) is the agent's.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_core::callout::CalloutLimits;
use portcullis_core::sync::protocol::{Endpoint, EndpointError};
use portcullis_core::sync::token_file::{TokenKeeper, TOKEN_FILE_NAME};
use portcullis_core::sync::{AgentSetup, Output, SyncAgent, SyncSettings, SyncStatus};
use portcullis_driver::options::{ManagedOptions, MAX_SNAPSHOT_BYTES};
use portcullis_driver::sync::jobs::{self, Finished, Job, Step};
use portcullis_driver::sync::renewal::{self, Renewer};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::Timer;

use crate::backup_file::BackupFile;
use crate::callout::Callouts;
use crate::config_file::SharedConfig;
use crate::now;
use crate::stop::Stop;
use crate::upstream::TlsSetupError;

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
pub(crate) struct Sync {
    endpoint: Endpoint,
    callouts: Callouts,
    backup: Option<BackupFile>,
    settings: SyncSettings,
    seed: u64,
    /// Keeps renewed tokens next to the backup, when there is one.
    keeper: Option<(TokenKeeper, BackupFile)>,
    renewal_seed: u64,
}

impl Sync {
    /// Checks the URL, token, CA and backup directory.
    pub(crate) async fn prepare(options: &ManagedOptions) -> Result<Sync, SyncSetupError> {
        // Checked before a kept token may take its place.
        Endpoint::new(&options.url, &options.token)?;
        let callouts = Callouts::new(options.ca.as_deref())?.with_limits(CalloutLimits {
            max_body_bytes: MAX_SNAPSHOT_BYTES,
            ..CalloutLimits::default()
        });
        let random: [u8; 32] = crate::gateway::random_bytes().ok_or(SyncSetupError::Random)?;
        let AgentSetup { settings, seed } =
            portcullis_driver::setup::agent_setup(options, random, system_hostname);
        let backup = match &options.backup {
            Some(b) => {
                let file = BackupFile::new(&b.dir);
                file.prepare()
                    .await
                    .map_err(|source| SyncSetupError::BackupDir {
                        dir: b.dir.clone(),
                        source,
                    })?;
                Some(file)
            }
            None => None,
        };
        let extra: [u8; 20] = crate::gateway::random_bytes().ok_or(SyncSetupError::Random)?;
        let (nonce_base, renewal_seed) = renewal::split_random(extra);
        let mut token = options.token.clone();
        let keeper = match (&options.backup, &backup) {
            (Some(b), Some(file)) => {
                let kept_file = file.sibling(TOKEN_FILE_NAME);
                let kept = kept_file.read().await.map_err(|e| e.to_string());
                token = renewal::pick_start_token(
                    &options.token,
                    kept,
                    &b.key,
                    &kept_file.path(),
                    wall_unix(),
                );
                Some((
                    TokenKeeper::new(b.key.clone(), &options.token, nonce_base),
                    kept_file,
                ))
            }
            _ => None,
        };
        let endpoint = Endpoint::new(&options.url, &token)?;
        Ok(Sync {
            endpoint,
            callouts,
            backup,
            settings,
            seed,
            keeper,
            renewal_seed,
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

    /// The management plane's endpoint and the callouts that reach it (for
    /// telemetry upload).
    pub(crate) fn management(&self) -> (Endpoint, Callouts) {
        (self.endpoint.clone(), self.callouts.clone())
    }

    /// Starts the agent and its task; the task puts each applied configuration
    /// in `shared` until `stop`. The status is kept up to date in what is returned.
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
            keeper,
            self.renewal_seed,
            wall_unix(),
            request_timeout,
        );
        let agent = Box::new(SyncAgent::new(self.settings, self.seed, now()));
        let status = Arc::new(Mutex::new(agent.status()));
        let callouts = self.callouts.clone();
        let reap_stop = stop.clone();
        smol::spawn(async move { callouts.reap(reap_stop).await }).detach();
        let ctx = Context {
            endpoint: self.endpoint,
            callouts: self.callouts,
            backup: self.backup,
            token_file,
            shared,
            status: status.clone(),
            request_timeout,
        };
        smol::spawn(run(agent, renewer, ctx, stop)).detach();
        status
    }
}

struct Context {
    endpoint: Endpoint,
    callouts: Callouts,
    backup: Option<BackupFile>,
    /// Where renewed tokens are kept (beside the backup).
    token_file: Option<BackupFile>,
    shared: Arc<SharedConfig>,
    status: Arc<Mutex<SyncStatus>>,
    request_timeout: std::time::Duration,
}

/// What woke the sync task.
enum Wake {
    Stop,
    Done(Finished),
    Timer,
}

async fn run(mut agent: Box<SyncAgent>, mut renewer: Renewer, ctx: Context, stop: Stop) {
    let (tx, rx) = smol::channel::unbounded::<Finished>();
    let mut timer = Timer::never();
    loop {
        // The state is published before the outputs are performed, so whoever sees
        // a configuration in force also sees the status that goes with it.
        let outputs: Vec<Output> = std::iter::from_fn(|| agent.poll_output()).collect();
        *ctx.status.lock().unwrap_or_else(|e| e.into_inner()) = agent.status();
        for output in outputs {
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
        let deadline = renewer.next_wake(agent_deadline, now(), wall_unix());
        match deadline {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let wake = smol::future::or(
            async {
                stop.cancelled().await;
                Wake::Stop
            },
            smol::future::or(
                async {
                    match rx.recv().await {
                        Ok(done) => Wake::Done(done),
                        // `tx` lives as long as this loop.
                        Err(_) => Wake::Stop,
                    }
                },
                async {
                    (&mut timer).await;
                    Wake::Timer
                },
            ),
        )
        .await;
        match wake {
            Wake::Stop => return,
            Wake::Timer => {
                // One timer for both machines: each is told only when it is due.
                renewer.handle_wake(&mut agent, agent_deadline, now(), wall_unix());
            }
            Wake::Done(done) if Renewer::owns(&done) => renewer.handle(done, wall_unix()),
            Wake::Done(done) => {
                renewer.observe(&done);
                match handle(agent, done).await {
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

/// Hands a finished piece of IO to the agent; compiling ones run on a blocking
/// thread. `None` if the agent panicked.
async fn handle(mut agent: Box<SyncAgent>, done: Finished) -> Option<Box<SyncAgent>> {
    if !done.compiles() {
        done.deliver(&mut agent, now());
        return Some(agent);
    }
    smol::unblock(move || {
        let mut agent = agent;
        std::panic::catch_unwind(AssertUnwindSafe(|| done.deliver(&mut agent, now()))).ok()?;
        Some(agent)
    })
    .await
}

/// Runs `job` as a task that answers the agent through `tx` (with the job's
/// failure if the task panics); nothing when there is no backup file.
fn spawn_job(job: Job, ctx: &Context, tx: &Sender<Finished>) {
    let kind = job.kind();
    let io = match job {
        Job::LoadBackup => {
            let Some(file) = ctx.backup.clone() else {
                return;
            };
            async move { Finished::Loaded(file.read().await.map_err(|e| e.to_string())) }.boxed()
        }
        Job::Fetch(request) => {
            let callouts = ctx.callouts.clone();
            async move { Finished::fetched(callouts.perform(request).await) }.boxed()
        }
        Job::SaveBackup(bytes) => {
            let Some(file) = ctx.backup.clone() else {
                return;
            };
            async move {
                Finished::Saved(
                    file.write_atomically(&bytes)
                        .await
                        .map_err(|e| e.to_string()),
                )
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
                Finished::TokenSaved(
                    file.write_atomically(&bytes)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
            .boxed()
        }
    };
    let tx = tx.clone();
    smol::spawn(async move {
        let done = AssertUnwindSafe(io)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| kind.failed("task failed".to_owned()));
        let _ = tx.send(done).await;
    })
    .detach();
}

/// The wall clock in Unix seconds (token expiries are wall-clock times).
fn wall_unix() -> u64 {
    SystemTime::now()
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
