//! The telemetry task on tokio: the core's pump with tokio's timers, blocking
//! threads for stdout and the upload buffer's files, and the callout client.

use std::io::Write;
use std::path::PathBuf;
#[cfg(feature = "sabotage")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use portcullis_core::callout::CalloutRequest;
use portcullis_core::sync::protocol::Endpoint;
#[cfg(feature = "sabotage")]
use portcullis_core::telemetry::batch::Batch;
use portcullis_core::telemetry::buffer_file::{BatchKey, BatchSealer};
use portcullis_core::telemetry::Telemetry;
use portcullis_driver::options::GatewayOptions;
use portcullis_driver::telemetry::pump::{
    self, batch_file_name, batch_temp_name, buffer_disk, new_uploader, restore_batches, Sinks,
    TelemetryHost,
};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::callout::Callouts;
use crate::env::Environment;

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

struct Host {
    env: Arc<Environment>,
    callouts: Callouts,
    dir: Option<PathBuf>,
    /// Uploads sent so far (for [`Sabotage::forget_telemetry_batch_ids`]).
    ///
    /// [`Sabotage::forget_telemetry_batch_ids`]: crate::env::Sabotage::forget_telemetry_batch_ids
    #[cfg(feature = "sabotage")]
    uploads: AtomicU64,
}

#[cfg(feature = "sabotage")]
impl Host {
    /// Sabotage only: the upload `request` under a batch id never sent before.
    fn forget_batch_id(&self, mut request: CalloutRequest) -> CalloutRequest {
        if request.method != "POST" || !request.url.ends_with("/telemetry") {
            return request;
        }
        if let Ok(mut batch) = Batch::from_json(&request.body) {
            let n = self.uploads.fetch_add(1, Ordering::Relaxed);
            batch.id = format!("{}-sent{n}", batch.id);
            request.body = Bytes::from(batch.to_json());
        }
        request
    }
}

impl TelemetryHost for Host {
    fn now(&self) -> Instant {
        crate::now()
    }

    fn sleep_until(&self, at: Instant) -> Boxed<()> {
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn write_log(&self, lines: String) -> Boxed<()> {
        let env = self.env.clone();
        Box::pin(async move {
            let _ = env
                .blocking(move || {
                    let mut out = std::io::stdout().lock();
                    // A closed stdout loses the log, never the gateway.
                    let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
                })
                .await;
        })
    }

    fn call(
        &self,
        request: CalloutRequest,
    ) -> Boxed<
        Result<
            portcullis_core::policy::context::Response,
            portcullis_core::callout::CalloutFailure,
        >,
    > {
        #[cfg(feature = "sabotage")]
        let request = if self.env.sabotage.forget_telemetry_batch_ids {
            self.forget_batch_id(request)
        } else {
            request
        };
        let callouts = self.callouts.clone();
        Box::pin(async move { callouts.perform(request).await })
    }

    fn save(&self, seq: u64, bytes: Bytes) -> Boxed<Result<(), String>> {
        let Some(dir) = self.dir.clone() else {
            return Box::pin(async { Ok(()) });
        };
        let env = self.env.clone();
        Box::pin(async move {
            let disk = env.disk.clone();
            // The configuration backup's atomic write: a crash leaves the
            // whole sealed file or none.
            env.blocking(move || {
                let path = dir.join(batch_file_name(seq));
                let tmp = dir.join(batch_temp_name(seq));
                let _ = disk.remove_file(&tmp);
                disk.write_new_synced(&tmp, &bytes)?;
                disk.rename(&tmp, &path)?;
                disk.sync_dir(&dir)
            })
            .await?
            .map_err(|e| e.to_string())
        })
    }

    fn remove(&self, seq: u64) -> Boxed<()> {
        let Some(dir) = self.dir.clone() else {
            return Box::pin(async {});
        };
        let env = self.env.clone();
        Box::pin(async move {
            let disk = env.disk.clone();
            let _ = env
                .blocking(move || disk.remove_file(&dir.join(batch_file_name(seq))))
                .await;
        })
    }
}

/// The telemetry task, when something consumes records: stop it with the token,
/// then await the handle (it saves what waits for upload).
pub(crate) struct TelemetryTask {
    /// Dropping it (with the gateway) stops the task.
    stop: DropGuard,
    handle: JoinHandle<()>,
}

impl TelemetryTask {
    /// Stops the task and waits until it has saved its batches.
    pub(crate) async fn finish(self) {
        drop(self.stop);
        let _ = self.handle.await;
    }
}

/// Creates `dir` if missing and reads the batches a previous run left there
/// (sealed under `key`); `None` if the directory is unusable.
fn restore(env: &Environment, dir: &std::path::Path, key: &BatchKey) -> Option<Vec<(u64, Bytes)>> {
    if let Err(e) = env.disk.create_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "telemetry buffer directory unusable; batches kept in memory only");
        return None;
    }
    Some(restore_batches(
        env.disk.list(dir).unwrap_or_default(),
        key,
        |name| env.disk.read(&dir.join(name)),
        |name| {
            let _ = env.disk.remove_file(&dir.join(name));
        },
        |from, to| env.disk.rename(&dir.join(from), &dir.join(to)),
    ))
}

/// Starts the telemetry task if the access log, tracing or upload is on.
pub(crate) fn spawn(
    options: &GatewayOptions,
    env: &Arc<Environment>,
    telemetry: Arc<Telemetry>,
    management: Option<(Endpoint, Callouts)>,
    callouts: Callouts,
) -> Option<TelemetryTask> {
    if !telemetry.wants_records() {
        return None;
    }
    let mut dir = None;
    let mut buffer = None;
    let mut host_callouts = callouts;
    let mut upload = None;
    if let Some((endpoint, management_callouts)) =
        management.filter(|_| telemetry.settings().upload)
    {
        let mut restored = Vec::new();
        if let Some(disk) = buffer_disk(options) {
            // The nonces of this process's batch files start from fresh random
            // bytes: without them, nothing is written.
            match env.random_bytes::<12>() {
                Some(base) => {
                    if let Some(found) = restore(env, &disk.dir, &disk.key) {
                        restored = found;
                        buffer = Some(BatchSealer::new(disk.key, base));
                        dir = Some(disk.dir);
                    }
                }
                None => tracing::warn!(
                    "no random bytes for the telemetry buffer's encryption; batches kept in memory only"
                ),
            }
        }
        let seed = env.random_bytes::<8>().map_or(0, u64::from_le_bytes);
        let instance = &telemetry.settings().instance;
        upload = Some((new_uploader(options, instance, seed, restored), endpoint));
        // Uploads and span exports share the management plane's callouts (its CA).
        host_callouts = management_callouts;
    }
    let host = Arc::new(Host {
        env: env.clone(),
        callouts: host_callouts,
        dir,
        #[cfg(feature = "sabotage")]
        uploads: AtomicU64::new(0),
    });
    let sinks = Sinks {
        upload,
        buffer,
        otlp: options.telemetry.otlp_endpoint.clone(),
    };
    let stop = CancellationToken::new();
    let task_stop = stop.clone();
    let handle = tokio::spawn(async move {
        let stopped = async move { task_stop.cancelled().await };
        pump::run(host, telemetry, sinks, stopped).await;
    });
    Some(TelemetryTask {
        stop: stop.drop_guard(),
        handle,
    })
}
