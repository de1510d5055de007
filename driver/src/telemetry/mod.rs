//! The telemetry task: the pump with the runtime's timers, blocking work for
//! stdout and the upload buffer's files, and the callout client.

use std::io::Write;
use std::path::{Path, PathBuf};
#[cfg(feature = "sabotage")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use portcullis_core::callout::{CalloutFailure, CalloutRequest};
use portcullis_core::policy::context::Response;
use portcullis_core::sync::protocol::Endpoint;
#[cfg(feature = "sabotage")]
use portcullis_core::telemetry::batch::Batch;
use portcullis_core::telemetry::buffer_file::{BatchKey, BatchSealer};
use portcullis_core::telemetry::RecordSink;

use crate::callout::Callouts;
use crate::disk::Disk;
use crate::options::GatewayOptions;
use crate::runtime::{random_bytes, Runtime};
use crate::stop::{Stop, TaskToken, Tracker};

pub mod hub;
pub(crate) mod otlp_metrics;
pub mod pump;

pub use hub::Hub;

use pump::{
    batch_file_name, batch_temp_name, buffer_disk, new_uploader, restore_batches, Sinks,
    TelemetryHost,
};

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

struct Host<R: Runtime> {
    rt: R,
    callouts: Callouts<R>,
    dir: Option<PathBuf>,
    /// Uploads sent so far (for [`Sabotage::forget_telemetry_batch_ids`]).
    ///
    /// [`Sabotage::forget_telemetry_batch_ids`]: crate::sabotage::Sabotage::forget_telemetry_batch_ids
    #[cfg(feature = "sabotage")]
    uploads: AtomicU64,
}

#[cfg(feature = "sabotage")]
impl<R: Runtime> Host<R> {
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

impl<R: Runtime> TelemetryHost for Host<R> {
    fn now(&self) -> Instant {
        self.rt.now()
    }

    fn sleep_until(&self, at: Instant) -> Boxed<()> {
        Box::pin(self.rt.timer(at))
    }

    fn write_log(&self, lines: String) -> Boxed<()> {
        let rt = self.rt.clone();
        Box::pin(async move {
            let _ = rt
                .blocking(move || {
                    let mut out = std::io::stdout().lock();
                    // A closed stdout loses the log, never the gateway.
                    let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
                })
                .await;
        })
    }

    fn call(&self, request: CalloutRequest) -> Boxed<Result<Response, CalloutFailure>> {
        #[cfg(feature = "sabotage")]
        let request = if self.rt.sabotage().forget_telemetry_batch_ids {
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
        let rt = self.rt.clone();
        Box::pin(async move {
            let disk = rt.disk();
            // The configuration backup's atomic write: a crash leaves the
            // whole sealed file or none.
            rt.blocking(move || {
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
        let rt = self.rt.clone();
        Box::pin(async move {
            let disk = rt.disk();
            let _ = rt
                .blocking(move || disk.remove_file(&dir.join(batch_file_name(seq))))
                .await;
        })
    }
}

/// The telemetry task, when something consumes records: stop it, then wait
/// until it has saved what waits for upload.
pub(crate) struct TelemetryTask {
    stop: Stop,
    done: Tracker,
}

impl Drop for TelemetryTask {
    fn drop(&mut self) {
        // Dropping it (with the gateway) stops the task.
        self.stop.cancel();
    }
}

impl TelemetryTask {
    /// Stops the task and waits until it has saved its batches.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        let done = std::mem::take(&mut self.done);
        done.wait().await;
    }
}

/// Creates `dir` if missing and reads the batches a previous run left there
/// (sealed under `key`); `None` if the directory is unusable.
fn restore(disk: &dyn Disk, dir: &Path, key: &BatchKey) -> Option<Vec<(u64, Bytes)>> {
    if let Err(e) = disk.create_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "telemetry buffer directory unusable; batches kept in memory only");
        return None;
    }
    Some(restore_batches(
        disk.list(dir).unwrap_or_default(),
        key,
        |name| disk.read(&dir.join(name)),
        |name| {
            let _ = disk.remove_file(&dir.join(name));
        },
        |from, to| disk.rename(&dir.join(from), &dir.join(to)),
    ))
}

/// Starts the telemetry task if the access log, tracing or upload is on.
pub(crate) async fn spawn<R: Runtime>(
    options: &GatewayOptions,
    rt: &R,
    telemetry: Arc<Hub>,
    management: Option<(Endpoint, Callouts<R>)>,
    callouts: Callouts<R>,
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
            match random_bytes::<R, 12>(rt) {
                Some(base) => {
                    let files = rt.disk();
                    let (path, key) = (disk.dir.clone(), disk.key.clone());
                    let found = rt
                        .blocking(move || restore(&*files, &path, &key))
                        .await
                        .ok()
                        .flatten();
                    if let Some(found) = found {
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
        let seed = random_bytes::<R, 8>(rt).map_or(0, u64::from_le_bytes);
        let instance = &telemetry.settings().instance;
        upload = Some((new_uploader(options, instance, seed, restored), endpoint));
        // Uploads and span exports share the management plane's callouts (its CA).
        host_callouts = management_callouts;
    }
    let host = Arc::new(Host {
        rt: rt.clone(),
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
    let stop = Stop::new();
    let done = Tracker::new();
    let token: Option<TaskToken> = done.token();
    let task_stop = stop.clone();
    rt.spawn(async move {
        let _running = token;
        let stopped = async move { task_stop.cancelled().await };
        pump::run(host, telemetry, sinks, stopped).await;
    });
    Some(TelemetryTask { stop, done })
}
