//! Connected mode: drives the core's sync agent. Fetches and heartbeats go to the
//! management plane through the callout client, the backup file is read and
//! written on blocking threads, each applied configuration is put in force, and
//! every decision (when, what, whether to apply) is the agent's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use portcullis_driver::options::{ManagedOptions, MAX_SNAPSHOT_BYTES};

use portcullis_core::callout::CalloutLimits;
use portcullis_core::sync::protocol::{Endpoint, EndpointError};
use portcullis_core::sync::token_file::{TokenKeeper, TOKEN_FILE_NAME};
use portcullis_core::sync::{AgentSetup, Output, SyncAgent, SyncSettings, SyncStatus};
use portcullis_driver::sync::jobs::{self, Finished, Job, JobKind, Step};
use portcullis_driver::sync::renewal::{self, Renewer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backup_file::BackupFile;
use crate::callout::Callouts;
use crate::config_file::SharedConfig;
use crate::env::Environment;
use crate::now;
use crate::upstream::{Connector, TlsSetupError};

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
    env: Arc<Environment>,
    /// Keeps renewed tokens next to the backup, when there is one.
    keeper: Option<(TokenKeeper, BackupFile)>,
    renewal_seed: u64,
}

impl Sync {
    /// Checks the URL, token, CA and backup directory.
    pub(crate) fn prepare(
        options: &ManagedOptions,
        env: &Arc<Environment>,
    ) -> Result<Sync, SyncSetupError> {
        // Checked before a kept token may take its place.
        Endpoint::new(&options.url, &options.token)?;
        let connector = Connector::on(env.net.clone(), options.ca.as_deref())?;
        let callouts = Callouts::with_connector(connector).with_limits(CalloutLimits {
            max_body_bytes: MAX_SNAPSHOT_BYTES,
            ..CalloutLimits::default()
        });
        let random: [u8; 32] = env.random_bytes().ok_or(SyncSetupError::Random)?;
        let AgentSetup { settings, seed } =
            portcullis_driver::setup::agent_setup(options, random, system_hostname);
        let backup = match &options.backup {
            Some(b) => {
                let file = BackupFile::on(env.disk.clone(), &b.dir);
                file.prepare().map_err(|source| SyncSetupError::BackupDir {
                    dir: b.dir.clone(),
                    source,
                })?;
                Some(file)
            }
            None => None,
        };
        let extra: [u8; 20] = env.random_bytes().ok_or(SyncSetupError::Random)?;
        let (nonce_base, renewal_seed) = renewal::split_random(extra);
        let mut token = options.token.clone();
        let keeper = match (&options.backup, &backup) {
            (Some(b), Some(file)) => {
                let kept_file = file.sibling(TOKEN_FILE_NAME);
                let kept = kept_file.read().map_err(|e| e.to_string());
                token = renewal::pick_start_token(
                    &options.token,
                    kept,
                    &b.key,
                    &kept_file.path(),
                    wall_unix(env),
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
            env: env.clone(),
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
    /// in `shared` until `stop`.
    pub(crate) fn spawn(
        self,
        shared: Arc<SharedConfig>,
        stop: CancellationToken,
    ) -> watch::Receiver<SyncStatus> {
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
            wall_unix(&self.env),
            request_timeout,
        );
        let agent = Box::new(SyncAgent::new(self.settings, self.seed, now()));
        let (status_tx, status_rx) = watch::channel(agent.status());
        let callouts = self.callouts.clone();
        let reap_stop = stop.clone();
        tokio::spawn(async move { callouts.reap(reap_stop).await });
        let ctx = Context {
            endpoint: self.endpoint,
            callouts: self.callouts,
            backup: self.backup,
            token_file,
            shared,
            status: status_tx,
            request_timeout,
            env: self.env,
            #[cfg(feature = "sabotage")]
            saves: std::cell::Cell::new(0),
        };
        tokio::spawn(run(agent, renewer, ctx, stop));
        status_rx
    }
}

struct Context {
    endpoint: Endpoint,
    callouts: Callouts,
    backup: Option<BackupFile>,
    /// Where renewed tokens are kept (beside the backup).
    token_file: Option<BackupFile>,
    shared: Arc<SharedConfig>,
    status: watch::Sender<SyncStatus>,
    request_timeout: Duration,
    env: Arc<Environment>,
    /// Backup writes asked for (for `Sabotage::skip_some_backup_writes`).
    #[cfg(feature = "sabotage")]
    saves: std::cell::Cell<u64>,
}

async fn run(
    mut agent: Box<SyncAgent>,
    mut renewer: Renewer,
    ctx: Context,
    stop: CancellationToken,
) {
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut kinds: HashMap<tokio::task::Id, JobKind> = HashMap::new();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    loop {
        // The state is published before the outputs are performed, so whoever sees
        // a configuration in force also sees the status that goes with it.
        let outputs: Vec<Output> = std::iter::from_fn(|| agent.poll_output()).collect();
        ctx.status.send_if_modified(|current| {
            let status = agent.status();
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
        for output in outputs {
            match jobs::plan(output, &ctx.endpoint, ctx.request_timeout) {
                Step::Run(job) => {
                    let kind = job.kind();
                    if let Some(id) = spawn_job(job, &ctx, &mut tasks) {
                        kinds.insert(id, kind);
                    }
                }
                Step::Apply(config) => ctx.shared.store_shared(config),
                Step::Nothing => {}
            }
        }
        for job in renewer.jobs() {
            let kind = job.kind();
            if let Some(id) = spawn_job(job, &ctx, &mut tasks) {
                kinds.insert(id, kind);
            }
        }
        let agent_deadline = agent.poll_timeout();
        let deadline = renewer.next_wake(agent_deadline, now(), wall_unix(&ctx.env));
        if let Some(at) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::from_std(at));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let done = match joined {
                    Ok((id, done)) => {
                        kinds.remove(&id);
                        done
                    }
                    Err(err) => {
                        let Some(kind) = kinds.remove(&err.id()) else { continue };
                        kind.failed(format!("task failed: {err}"))
                    }
                };
                #[cfg(feature = "sabotage")]
                if done.is_failed_fetch() && sabotage::after_failed_fetch(&ctx) {
                    return;
                }
                renewer.observe(&done);
                if Renewer::owns(&done) {
                    renewer.handle(done, wall_unix(&ctx.env));
                    continue;
                }
                match handle(agent, done, &ctx.env).await {
                    Some(a) => agent = a,
                    None => {
                        jobs::log_agent_failed();
                        return;
                    }
                }
            }
            _ = &mut sleep, if deadline.is_some() => {
                // One timer for both machines: each is told only when it is due.
                renewer.handle_wake(&mut agent, agent_deadline, now(), wall_unix(&ctx.env));
            }
        }
    }
}

/// Hands a finished piece of IO to the agent; compiling ones run on a blocking
/// thread. `None` if the agent panicked.
async fn handle(
    mut agent: Box<SyncAgent>,
    done: Finished,
    env: &Environment,
) -> Option<Box<SyncAgent>> {
    if !done.compiles() {
        done.deliver(&mut agent, now());
        return Some(agent);
    }
    env.blocking(move || {
        let mut agent = agent;
        done.deliver(&mut agent, now());
        agent
    })
    .await
    .ok()
}

/// Runs a job in `tasks`; `None` when there is nothing to run (no backup file).
fn spawn_job(job: Job, ctx: &Context, tasks: &mut JoinSet<Finished>) -> Option<tokio::task::Id> {
    let handle = match job {
        Job::LoadBackup => {
            let file = ctx.backup.clone()?;
            let env = ctx.env.clone();
            tasks.spawn(async move {
                #[cfg(feature = "sabotage")]
                if env.sabotage.ignore_backup_at_start {
                    return Finished::Loaded(Ok(None));
                }
                let read = env.blocking(move || file.read()).await;
                #[cfg(feature = "sabotage")]
                let read = sabotage::after_backup_read(&env, read);
                Finished::Loaded(match read {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                })
            })
        }
        Job::Fetch(request) => {
            let callouts = ctx.callouts.clone();
            tasks.spawn(async move { Finished::fetched(callouts.perform(request).await) })
        }
        Job::SaveBackup(bytes) => {
            let file = ctx.backup.clone()?;
            let env = ctx.env.clone();
            #[cfg(feature = "sabotage")]
            let skip = sabotage::skip_backup_write(ctx);
            tasks.spawn(async move {
                #[cfg(feature = "sabotage")]
                if skip {
                    return Finished::Saved(Ok(()));
                }
                #[cfg(feature = "sabotage")]
                let in_place = env.sabotage.write_backup_in_place;
                let written = env
                    .blocking(move || {
                        #[cfg(feature = "sabotage")]
                        if in_place {
                            return file.overwrite_unsynced(&bytes);
                        }
                        file.write_atomically(&bytes)
                    })
                    .await;
                Finished::Saved(match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                })
            })
        }
        Job::Heartbeat(request) => {
            let callouts = ctx.callouts.clone();
            tasks.spawn(async move { Finished::heartbeat(callouts.perform(request).await) })
        }
        Job::RenewToken(request) => {
            let callouts = ctx.callouts.clone();
            tasks.spawn(async move {
                Finished::Renewed(renewal::renew_result(callouts.perform(request).await))
            })
        }
        Job::SaveToken(bytes) => {
            let file = ctx.token_file.clone()?;
            let env = ctx.env.clone();
            tasks.spawn(async move {
                let written = env.blocking(move || file.write_atomically(&bytes)).await;
                Finished::TokenSaved(match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                })
            })
        }
    };
    Some(handle.id())
}

/// The wall clock in Unix seconds (token expiries are wall-clock times).
fn wall_unix(env: &Environment) -> u64 {
    (env.wall_clock)()
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
    use crate::env::Environment;

    /// After a failed fetch: whether to stop syncing
    /// (`stop_after_failed_fetch`); drops the configuration in force
    /// (`forget_config_on_failed_fetch`).
    pub(super) fn after_failed_fetch(ctx: &Context) -> bool {
        let sabotage = ctx.env.sabotage;
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
    pub(super) fn after_backup_read(
        env: &Environment,
        read: Result<std::io::Result<Option<Vec<u8>>>, String>,
    ) -> Result<std::io::Result<Option<Vec<u8>>>, String> {
        use portcullis_core::sync::backup::CHECKSUM_LEN;
        match read {
            Ok(Ok(Some(mut bytes))) if env.sabotage.skip_backup_checksum => {
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
    pub(super) fn skip_backup_write(ctx: &Context) -> bool {
        let n = ctx.saves.get();
        ctx.saves.set(n + 1);
        ctx.env.sabotage.skip_some_backup_writes && n % 2 == 1
    }
}
