//! The telemetry task on smol: the core's pump with smol's timers, its
//! blocking pool for stdout and the upload buffer's files, and the callout
//! client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use portcullis_core::callout::{CalloutFailure, CalloutRequest};
use portcullis_core::policy::context::Response;
use portcullis_core::sync::protocol::Endpoint;
use portcullis_core::telemetry::buffer_file::{BatchKey, BatchSealer};
use portcullis_core::telemetry::Telemetry;
use portcullis_driver::options::GatewayOptions;
use portcullis_driver::telemetry::pump::{
    self, batch_file_name, batch_temp_name, buffer_disk, new_uploader, restore_batches, Sinks,
    TelemetryHost,
};

use crate::callout::Callouts;
use crate::stop::Stop;

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

struct Host {
    callouts: Callouts,
    dir: Option<PathBuf>,
}

impl TelemetryHost for Host {
    fn now(&self) -> Instant {
        crate::now()
    }

    fn sleep_until(&self, at: Instant) -> Boxed<()> {
        Box::pin(async move {
            smol::Timer::at(at).await;
        })
    }

    fn write_log(&self, lines: String) -> Boxed<()> {
        Box::pin(smol::unblock(move || {
            let mut out = std::io::stdout().lock();
            // A closed stdout loses the log, never the gateway.
            let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
        }))
    }

    fn call(&self, request: CalloutRequest) -> Boxed<Result<Response, CalloutFailure>> {
        let callouts = self.callouts.clone();
        Box::pin(async move { callouts.perform(request).await })
    }

    fn save(&self, seq: u64, bytes: Bytes) -> Boxed<Result<(), String>> {
        let Some(dir) = self.dir.clone() else {
            return Box::pin(async { Ok(()) });
        };
        Box::pin(smol::unblock(move || {
            write_atomically(&dir, seq, &bytes).map_err(|e| e.to_string())
        }))
    }

    fn remove(&self, seq: u64) -> Boxed<()> {
        let Some(dir) = self.dir.clone() else {
            return Box::pin(async {});
        };
        Box::pin(smol::unblock(move || {
            let _ = std::fs::remove_file(dir.join(batch_file_name(seq)));
        }))
    }
}

/// The telemetry task, when something consumes records.
pub(crate) struct TelemetryTask {
    stop: Stop,
    /// Taken by `finish`.
    done: Option<smol::Task<()>>,
}

impl Drop for TelemetryTask {
    fn drop(&mut self) {
        // A gateway dropped without shutdown stops its task too.
        self.stop.cancel();
    }
}

impl TelemetryTask {
    /// Stops the task and waits until it has saved its batches.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            done.await;
        }
    }
}

/// Writes the sealed file of batch `seq` in `dir` like the configuration
/// backup: an owner-only temporary file, fsync, rename, fsync of the directory,
/// so a crash leaves the whole file or none.
fn write_atomically(dir: &Path, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(batch_file_name(seq));
    let tmp = dir.join(batch_temp_name(seq));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` (owner-only) if missing and reads the batches a previous run
/// left there (sealed under `key`); `None` if the directory is unusable.
fn restore(dir: &Path, key: &BatchKey) -> Option<Vec<(u64, Bytes)>> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    if let Err(e) = builder.create(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "telemetry buffer directory unusable; batches kept in memory only");
        return None;
    }
    let names = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(restore_batches(
        names,
        key,
        |name| std::fs::read(dir.join(name)),
        |name| {
            let _ = std::fs::remove_file(dir.join(name));
        },
        |from, to| std::fs::rename(dir.join(from), dir.join(to)),
    ))
}

/// Starts the telemetry task if the access log, tracing or upload is on.
pub(crate) async fn spawn(
    options: &GatewayOptions,
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
            match crate::gateway::random_bytes::<12>() {
                Some(base) => {
                    let (d, key) = (disk.dir.clone(), disk.key.clone());
                    if let Some(found) = smol::unblock(move || restore(&d, &key)).await {
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
        let seed = crate::gateway::random_bytes::<8>().map_or(0, u64::from_le_bytes);
        let instance = &telemetry.settings().instance;
        upload = Some((new_uploader(options, instance, seed, restored), endpoint));
        // Uploads and span exports share the management plane's callouts (its CA).
        host_callouts = management_callouts;
    }
    let host = Arc::new(Host {
        callouts: host_callouts,
        dir,
    });
    let sinks = Sinks {
        upload,
        buffer,
        otlp: options.telemetry.otlp_endpoint.clone(),
    };
    let stop = Stop::new();
    let task_stop = stop.clone();
    let done = smol::spawn(async move {
        pump::run(host, telemetry, sinks, async move {
            task_stop.cancelled().await
        })
        .await;
    });
    Some(TelemetryTask {
        stop,
        done: Some(done),
    })
}
