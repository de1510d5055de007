//! The telemetry task every runtime runs: drains request records from the
//! [`Hub`] into the access log, the OTLP exporter and the uploader (both core
//! machines), and does what those machines ask. Written once over
//! [`TelemetryHost`], which the runtime implements with its clock, timers,
//! files, stdout and callouts; nothing here does IO itself or decides what the
//! machines decide (batching, when to send, backoff).

use std::future::{poll_fn, Future};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;

use portcullis_core::callout::{CalloutFailure, CalloutRequest};
use portcullis_core::policy::context::Response;
use portcullis_core::sync::protocol::Endpoint;
use portcullis_core::telemetry::buffer_file::{self, BatchKey, BatchSealer};
use portcullis_core::telemetry::otlp;
use portcullis_core::telemetry::otlp_exporter::{self, ExportResult, ExportSettings, OtlpExporter};
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::uploader::upload_result;
use portcullis_core::telemetry::uploader::{Output, UploadResult, UploadSettings, Uploader};
use portcullis_core::telemetry::RecordSink;

use super::Hub;

use crate::options::{ConfigOrigin, GatewayOptions};

/// Records taken from the queue at a time.
const DRAIN: usize = 1024;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the telemetry task needs from its runtime.
pub trait TelemetryHost: Send + Sync + 'static {
    /// The monotonic clock.
    fn now(&self) -> Instant;
    /// Resolves at `at`.
    fn sleep_until(&self, at: Instant) -> Boxed<()>;
    /// Writes access log lines to stdout (off the async threads).
    fn write_log(&self, lines: String) -> Boxed<()>;
    /// Makes an HTTP call.
    fn call(&self, request: CalloutRequest) -> Boxed<Result<Response, CalloutFailure>>;
    /// Keeps upload batch `seq` (its sealed file, `bytes`) durably (no-op
    /// without a buffer directory).
    fn save(&self, seq: u64, bytes: Bytes) -> Boxed<Result<(), String>>;
    /// Removes upload batch `seq` from the buffer directory.
    fn remove(&self, seq: u64) -> Boxed<()>;
}

/// The file name of upload batch `seq` in the buffer directory.
pub fn batch_file_name(seq: u64) -> String {
    format!("batch-{seq:020}.json")
}

/// The batch number of a buffer directory entry, if it is a batch file.
pub fn batch_file_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("batch-")?.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The name a refused batch file is moved to: kept for the operator to
/// examine, never read again (it is not a batch file name).
pub fn rejected_name(name: &str) -> String {
    format!("{name}.rejected")
}

/// The batches a previous run left in the buffer directory, from its entry
/// `names`: leftover temporary files are removed with `remove`, batch files
/// read with `read` and opened with `key`. An unreadable one is skipped and
/// logged; one that does not open (plaintext from an earlier version, damaged,
/// sealed under another key, tampered with) is logged, never uploaded, and
/// moved aside to its [`rejected_name`] with `set_aside(from, to)`.
pub fn restore_batches(
    names: Vec<String>,
    key: &BatchKey,
    read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    remove: impl Fn(&str),
    set_aside: impl Fn(&str, &str) -> std::io::Result<()>,
) -> Vec<(u64, Bytes)> {
    let mut found = Vec::new();
    for name in names {
        if name.starts_with('.') && name.ends_with(".tmp") {
            remove(&name);
            continue;
        }
        let Some(seq) = batch_file_seq(&name) else {
            continue;
        };
        let file = match read(&name) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "unreadable telemetry batch skipped");
                continue;
            }
        };
        match buffer_file::open(&file, seq, key) {
            Ok(json) => found.push((seq, Bytes::from(json))),
            Err(e) => {
                let aside = rejected_name(&name);
                match set_aside(&name, &aside) {
                    Ok(()) => tracing::error!(
                        file = %name, moved_to = %aside,
                        "telemetry batch refused and not uploaded: {e}; moved aside for examination"
                    ),
                    Err(io) => tracing::error!(
                        file = %name, rename_error = %io,
                        "telemetry batch refused and not uploaded: {e}; it could not be moved aside"
                    ),
                }
            }
        }
    }
    if !found.is_empty() {
        tracing::info!(
            batches = found.len(),
            "telemetry batches from an earlier run will be uploaded"
        );
    }
    found
}

/// The name of the temporary file batch `seq` is written to before its rename.
pub fn batch_temp_name(seq: u64) -> String {
    format!(".{}.tmp", batch_file_name(seq))
}

/// The uploader of a gateway started with `options`, for process `instance`,
/// given the batches its buffer directory held (`restored`); `seed` draws the
/// backoff's jitter.
pub fn new_uploader(
    options: &GatewayOptions,
    instance: &str,
    seed: u64,
    restored: Vec<(u64, Bytes)>,
) -> Uploader {
    let mut uploader = Uploader::new(
        instance,
        UploadSettings {
            buffer_bytes: options.telemetry.buffer_bytes,
            ..UploadSettings::default()
        },
        seed,
    );
    uploader.restore(restored);
    uploader
}

/// Where upload batches wait on disk and the key they are sealed under.
#[derive(Debug, Clone)]
pub struct BufferDisk {
    /// The buffer directory.
    pub dir: PathBuf,
    /// The batch key, derived from the backup key.
    pub key: BatchKey,
}

/// Where upload batches wait on disk: the configured directory, else the backup
/// directory's `telemetry/`, sealed under the backup key. `None`, memory only,
/// without a backup: batches hold client data, never written in the clear (a
/// directory configured without a backup key is logged and not used).
pub fn buffer_disk(options: &GatewayOptions) -> Option<BufferDisk> {
    let backup = match &options.origin {
        ConfigOrigin::Managed(m) => m.backup.as_ref(),
        ConfigOrigin::File(_) => None,
    };
    let configured = options.telemetry.buffer_dir.clone();
    let Some(backup) = backup else {
        if let Some(dir) = configured {
            tracing::warn!(
                dir = %dir.display(),
                "the telemetry buffer directory is not used without a backup key (batches are encrypted with it); batches are kept in memory only"
            );
        }
        return None;
    };
    Some(BufferDisk {
        dir: configured.unwrap_or_else(|| backup.dir.join("telemetry")),
        key: BatchKey::derive(&backup.key),
    })
}

/// Where telemetry goes besides the metrics.
pub struct Sinks {
    /// Upload to the management plane: the uploader (already given what the
    /// buffer directory held) and the endpoint.
    pub upload: Option<(Uploader, Endpoint)>,
    /// Seals upload batches before the host saves them; `None`: batches wait
    /// in memory only.
    pub buffer: Option<BatchSealer>,
    /// OTLP/HTTP collector base URL.
    pub otlp: Option<String>,
}

struct Task<H: TelemetryHost> {
    host: Arc<H>,
    telemetry: Arc<Hub>,
    upload: Option<(Uploader, Endpoint)>,
    buffer: Option<BatchSealer>,
    /// The collector's base URL and the exporter, when spans are exported.
    otlp: Option<(String, OtlpExporter)>,
    uploading: Option<(u64, Boxed<UploadResult>)>,
    exporting: Option<(u64, Boxed<ExportResult>)>,
    /// Queue overflows already handed to the uploader.
    queue_drops_reported: u64,
}

/// Runs until `stop` resolves, then saves what waits for upload.
pub async fn run<H: TelemetryHost>(
    host: Arc<H>,
    telemetry: Arc<Hub>,
    sinks: Sinks,
    stop: impl Future<Output = ()> + Send,
) {
    let otlp = sinks.otlp.map(|url| {
        let settings = telemetry.settings();
        let exporter = OtlpExporter::new(
            &settings.gateway,
            &settings.instance,
            ExportSettings::default(),
        );
        (url, exporter)
    });
    let mut task = Task {
        host,
        telemetry,
        upload: sinks.upload,
        buffer: sinks.buffer,
        otlp,
        uploading: None,
        exporting: None,
        queue_drops_reported: 0,
    };
    let mut stop = Box::pin(stop);
    let mut records = Vec::new();
    loop {
        task.perform_outputs().await;
        let deadline = task.deadline();
        let mut sleep = deadline.map(|at| task.host.sleep_until(at));
        let woke = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Stop);
            }
            if let Some((seq, upload)) = task.uploading.as_mut() {
                if let Poll::Ready(result) = upload.as_mut().poll(cx) {
                    return Poll::Ready(Wake::Uploaded(*seq, result));
                }
            }
            if let Some((seq, export)) = task.exporting.as_mut() {
                if let Poll::Ready(result) = export.as_mut().poll(cx) {
                    return Poll::Ready(Wake::Exported(*seq, result));
                }
            }
            if task
                .telemetry
                .poll_records(cx, DRAIN, &mut records)
                .is_ready()
            {
                return Poll::Ready(Wake::Records);
            }
            if let Some(s) = sleep.as_mut() {
                if s.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
            }
            Poll::Pending
        })
        .await;
        let now = task.host.now();
        match woke {
            Wake::Stop => break,
            Wake::Uploaded(seq, result) => {
                task.uploading = None;
                if let UploadResult::Failed(reason) = &result {
                    tracing::debug!(seq, %reason, "telemetry upload failed; will retry");
                }
                if let Some((u, _)) = task.upload.as_mut() {
                    u.handle_result(seq, result, now);
                }
            }
            Wake::Exported(seq, result) => {
                task.exporting = None;
                if let Some((_, x)) = task.otlp.as_mut() {
                    x.handle_export_result(seq, result, now);
                }
            }
            Wake::Records => task.take(std::mem::take(&mut records), now).await,
            Wake::Timer => {}
        }
        task.on_time(now);
    }
    // The last requests' records, then whatever waits for upload, are saved
    // for the next start; spans still waiting are dropped (best effort).
    task.otlp = None;
    loop {
        let got = {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            task.telemetry
                .poll_records(&mut cx, DRAIN, &mut records)
                .is_ready()
        };
        if !got {
            break;
        }
        let now = task.host.now();
        task.take(std::mem::take(&mut records), now).await;
    }
    if let Some((u, _)) = task.upload.as_mut() {
        u.flush();
    }
    task.perform_outputs().await;
}

enum Wake {
    Stop,
    Uploaded(u64, UploadResult),
    Exported(u64, ExportResult),
    Records,
    Timer,
}

impl<H: TelemetryHost> Task<H> {
    fn deadline(&self) -> Option<Instant> {
        let upload = self.upload.as_ref().and_then(|(u, _)| u.poll_timeout());
        let export = self.otlp.as_ref().and_then(|(_, x)| x.poll_timeout());
        match (upload, export) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn take(&mut self, records: Vec<RequestRecord>, now: Instant) {
        let log = self.telemetry.settings().access_log;
        if log.enabled() {
            let mut lines = String::new();
            for r in records.iter().filter(|r| log.wants(r)) {
                log.write_line(r, &mut lines);
            }
            if !lines.is_empty() {
                self.host.write_log(lines).await;
            }
        }
        if let Some((_, x)) = self.otlp.as_mut() {
            x.handle_spans(&records, now);
        }
        if let Some((u, _)) = self.upload.as_mut() {
            // Records the in-memory queue had no room for are reported in the
            // next batch, like those the buffer drops.
            let drops = self.telemetry.queue_drops();
            u.count_dropped(drops - self.queue_drops_reported);
            self.queue_drops_reported = drops;
            u.handle_records(records, now);
        }
    }

    fn on_time(&mut self, now: Instant) {
        if let Some((u, _)) = self.upload.as_mut() {
            u.handle_timeout(now);
        }
        if let Some((_, x)) = self.otlp.as_mut() {
            if x.poll_timeout().is_some_and(|at| at <= now) {
                x.handle_timeout(now);
            }
        }
    }

    /// Does what the exporter asked: starts its export, which runs alongside.
    fn perform_exports(&mut self) {
        let Some((url, x)) = self.otlp.as_mut() else {
            return;
        };
        while let Some(output) = x.poll_output() {
            match output {
                otlp_exporter::Output::Export {
                    seq, body, timeout, ..
                } => {
                    let call = self.host.call(otlp::export_request(url, body, timeout));
                    self.exporting = Some((
                        seq,
                        Box::pin(async move {
                            match call.await {
                                Ok(response) => otlp_exporter::export_result(&response),
                                Err(e) => ExportResult::Failed(e.to_string()),
                            }
                        }),
                    ));
                }
                otlp_exporter::Output::Dropped { failures, reason } => {
                    tracing::warn!(%reason, failures, "span export failed; the spans are dropped");
                }
            }
        }
    }

    /// Does what the exporter and the uploader asked, but the export and the
    /// upload themselves, which run alongside.
    async fn perform_outputs(&mut self) {
        self.perform_exports();
        loop {
            let Some((u, endpoint)) = self.upload.as_mut() else {
                return;
            };
            let Some(output) = u.poll_output() else {
                return;
            };
            match output {
                Output::Save { seq, bytes } => {
                    let Some(sealer) = self.buffer.as_mut() else {
                        continue;
                    };
                    let saved = match sealer.seal(seq, &bytes) {
                        Ok(file) => self.host.save(seq, Bytes::from(file)).await,
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = saved {
                        tracing::warn!(seq, error = %e, "could not keep a telemetry batch on disk; it is kept in memory");
                    }
                }
                Output::Remove { seq } => self.host.remove(seq).await,
                Output::Upload {
                    seq,
                    bytes,
                    timeout,
                } => {
                    let call = self.host.call(endpoint.telemetry_request(bytes, timeout));
                    self.uploading = Some((
                        seq,
                        Box::pin(async move {
                            match call.await {
                                Ok(response) => upload_result(&response),
                                Err(e) => UploadResult::Failed(e.to_string()),
                            }
                        }),
                    ));
                }
                Output::Dropped { records, reason } => {
                    self.telemetry.count_buffer_drops(records);
                    tracing::warn!(records, %reason, "telemetry records dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_file_names_sort_by_number_and_parse_back() {
        assert_eq!(batch_file_name(7), "batch-00000000000000000007.json");
        assert_eq!(batch_file_seq(&batch_file_name(u64::MAX)), Some(u64::MAX));
        assert!(batch_file_name(9) < batch_file_name(10));
        for other in [
            "batch-7.json",
            "batch-0000000000000000000x.json",
            ".tmp",
            "config.backup",
        ] {
            assert_eq!(batch_file_seq(other), None, "{other}");
        }
    }

    #[test]
    fn batches_wait_on_disk_only_with_a_backup_key() {
        use crate::options::{BackupOptions, ManagedOptions};
        use portcullis_core::sync::BackupKey;
        let key = BackupKey::from_bytes([6; 32]);
        let mut managed = ManagedOptions::new("http://mgmt", "token");
        let mut options = GatewayOptions::managed(managed.clone());
        assert!(buffer_disk(&options).is_none());
        // A directory given without a backup key is not used: memory only.
        options.telemetry.buffer_dir = Some("/var/buffer".into());
        assert!(buffer_disk(&options).is_none());
        assert!(buffer_disk(&GatewayOptions::new("config.json".into())).is_none());
        managed.backup = Some(BackupOptions {
            dir: "/var/backup".into(),
            key: key.clone(),
        });
        let mut options = GatewayOptions::managed(managed);
        let disk = buffer_disk(&options).unwrap();
        assert_eq!(disk.dir, PathBuf::from("/var/backup/telemetry"));
        assert_eq!(disk.key, BatchKey::derive(&key));
        options.telemetry.buffer_dir = Some("/var/buffer".into());
        assert_eq!(
            buffer_disk(&options).unwrap().dir,
            PathBuf::from("/var/buffer")
        );
    }

    #[test]
    fn restore_opens_batches_removes_temporaries_and_sets_refused_ones_aside() {
        use portcullis_core::sync::BackupKey;
        let key = BatchKey::derive(&BackupKey::from_bytes([4; 32]));
        let mut sealer = BatchSealer::new(key.clone(), [1; 12]);
        let mut other =
            BatchSealer::new(BatchKey::derive(&BackupKey::from_bytes([5; 32])), [1; 12]);
        let mut files = std::collections::BTreeMap::new();
        files.insert(batch_file_name(3), sealer.seal(3, b"three").unwrap());
        // Plaintext from an earlier version, another key's batch, a tampered
        // one, one renamed, and one that cannot be read.
        files.insert(batch_file_name(6), br#"{"id":"old"}"#.to_vec());
        files.insert(batch_file_name(7), other.seal(7, b"seven").unwrap());
        let mut tampered = sealer.seal(8, b"eight").unwrap();
        tampered[40] ^= 1;
        files.insert(batch_file_name(8), tampered);
        files.insert(batch_file_name(9), sealer.seal(2, b"two").unwrap());
        let mut names: Vec<String> = files.keys().cloned().collect();
        names.extend([batch_temp_name(4), "notes.txt".into(), batch_file_name(5)]);
        let removed = std::cell::RefCell::new(Vec::new());
        let aside = std::cell::RefCell::new(Vec::new());
        let found = restore_batches(
            names,
            &key,
            |name| {
                files
                    .get(name)
                    .cloned()
                    .ok_or_else(|| std::io::ErrorKind::PermissionDenied.into())
            },
            |name| removed.borrow_mut().push(name.to_string()),
            |from, to| {
                aside.borrow_mut().push((from.to_string(), to.to_string()));
                Ok(())
            },
        );
        assert_eq!(found, vec![(3, Bytes::from_static(b"three"))]);
        assert_eq!(removed.into_inner(), vec![batch_temp_name(4)]);
        let aside = aside.into_inner();
        let expected: Vec<(String, String)> = [6, 7, 8, 9]
            .into_iter()
            .map(|seq| (batch_file_name(seq), rejected_name(&batch_file_name(seq))))
            .collect();
        assert_eq!(aside, expected);
        // What was set aside is never read as a batch again.
        assert!(aside.iter().all(|(_, to)| batch_file_seq(to).is_none()));
    }
}
