//! The telemetry uploader: gathers request records into batches, keeps them in
//! a bounded buffer (on disk, through the adapter) until the management plane
//! has stored them, and sends them one at a time with backoff.
//!
//! Sans-IO, in the shape of the sync agent: the adapter feeds records, results
//! and time in, and does what [`Uploader::poll_output`] asks. Batches survive a
//! restart when the adapter keeps the buffer on disk: it hands the files it
//! finds to [`Uploader::restore`] before anything else, and their ids (kept in
//! the batch) make a resend after a crash harmless.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::batch::{Batch, MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
use super::record::RequestRecord;
use crate::http::Response;
use crate::sync::backoff::{Backoff, BackoffPolicy};
use crate::sync::protocol::detail;

/// Default size of the buffer of batches waiting for upload.
pub const DEFAULT_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// The uploader's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// Largest total size of the batches waiting; above it the oldest go.
    pub buffer_bytes: u64,
    /// How long records wait for more before their batch is closed.
    pub flush_after: Duration,
    /// Records per batch at most.
    pub batch_records: usize,
    /// Time allowed for one upload.
    pub request_timeout: Duration,
    /// Waits between failed uploads.
    pub backoff: BackoffPolicy,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            flush_after: Duration::from_secs(5),
            batch_records: MAX_BATCH_RECORDS,
            request_timeout: Duration::from_secs(30),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadResult {
    /// Stored (or already stored: a duplicate is a success).
    Stored,
    /// The management plane refuses this batch for good (it is dropped).
    Refused(String),
    /// Unreachable, timed out or a server error: try again later.
    Failed(String),
}

/// What a telemetry upload's response means.
pub fn upload_result(response: &Response) -> UploadResult {
    match response.status {
        200..=299 => UploadResult::Stored,
        // The batch itself is refused: sending it again cannot help.
        400 | 413 | 415 | 422 => {
            UploadResult::Refused(format!("status {}: {}", response.status, detail(response)))
        }
        status => UploadResult::Failed(format!("status {status}: {}", detail(response))),
    }
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Keep batch `seq` durably (a file named after `seq`).
    Save {
        /// The batch's place in the buffer.
        seq: u64,
        /// Its JSON.
        bytes: Bytes,
    },
    /// Batch `seq` is no longer needed.
    Remove {
        /// Which.
        seq: u64,
    },
    /// Send batch `seq` and answer with [`Uploader::handle_result`].
    Upload {
        /// Which.
        seq: u64,
        /// Its JSON.
        bytes: Bytes,
        /// Time allowed.
        timeout: Duration,
    },
    /// Records were dropped (buffer full, or a refused batch): `records` of them.
    Dropped {
        /// How many records.
        records: u64,
        /// Why, for the log.
        reason: String,
    },
}

#[derive(Debug)]
struct Waiting {
    seq: u64,
    bytes: Bytes,
    records: u64,
    /// Drops this batch reports (lost with it if it is dropped, so re-counted).
    carried: u64,
}

/// The uploader; see the module documentation.
#[derive(Debug)]
pub struct Uploader {
    settings: UploadSettings,
    instance: String,
    open: Vec<RequestRecord>,
    open_since: Option<Instant>,
    /// Drops not yet reported in a batch.
    unreported_drops: u64,
    waiting: VecDeque<Waiting>,
    waiting_bytes: u64,
    next_seq: u64,
    in_flight: Option<u64>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    outputs: VecDeque<Output>,
}

impl Uploader {
    /// An uploader for gateway process `instance`; `seed` draws the backoff's jitter.
    pub fn new(instance: &str, settings: UploadSettings, seed: u64) -> Self {
        Uploader {
            settings,
            instance: instance.to_string(),
            open: Vec::new(),
            open_since: None,
            unreported_drops: 0,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            next_seq: 0,
            in_flight: None,
            retry_at: None,
            backoff: Backoff::new(settings.backoff, seed),
            outputs: VecDeque::new(),
        }
    }

    /// Batches a previous run left in the buffer, as `(seq, bytes)`, before any
    /// other input. Unreadable ones are removed.
    pub fn restore(&mut self, found: Vec<(u64, Bytes)>) {
        let mut found = found;
        found.sort_by_key(|(seq, _)| *seq);
        for (seq, bytes) in found {
            self.next_seq = self.next_seq.max(seq + 1);
            match Batch::from_json(&bytes) {
                Ok(batch) => self.push_waiting(Waiting {
                    seq,
                    records: batch.records.len() as u64,
                    carried: batch.dropped,
                    bytes,
                }),
                Err(e) => {
                    self.outputs.push_back(Output::Remove { seq });
                    self.outputs.push_back(Output::Dropped {
                        records: 0,
                        reason: format!("unreadable telemetry batch {seq} removed: {e}"),
                    });
                }
            }
        }
        crate::machine::debug_check(self);
    }

    /// Records to upload.
    pub fn handle_records(&mut self, records: Vec<RequestRecord>, now: Instant) {
        for record in records {
            if self.open.is_empty() {
                self.open_since = Some(now);
            }
            self.open.push(record);
            if self.open.len() >= self.settings.batch_records {
                self.close_batch();
            }
        }
        crate::machine::debug_check(self);
    }

    /// Records dropped before they reached the uploader (counted in the next batch).
    pub fn count_dropped(&mut self, records: u64) {
        self.unreported_drops += records;
    }

    /// The upload of batch `seq` ended.
    pub fn handle_result(&mut self, seq: u64, result: UploadResult, now: Instant) {
        if self.in_flight != Some(seq) {
            return;
        }
        self.in_flight = None;
        match result {
            UploadResult::Stored => {
                self.backoff.reset();
                self.retry_at = None;
                self.forget(seq);
            }
            UploadResult::Refused(reason) => {
                let (records, carried) = self.forget(seq);
                self.outputs.push_back(Output::Dropped {
                    records,
                    reason: format!("the management plane refused telemetry batch {seq}: {reason}"),
                });
                self.unreported_drops += records + carried;
            }
            UploadResult::Failed(_) => {
                self.retry_at = Some(now + self.backoff.next_delay());
            }
        }
        crate::machine::debug_check(self);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.unreported_drops > 0 && self.open_since.is_none() {
            // Drops with no record after them still go out, in a batch of their own.
            self.open_since = Some(now);
        }
        if self
            .open_since
            .is_some_and(|since| now >= since + self.settings.flush_after)
        {
            self.close_batch();
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
        }
        crate::machine::debug_check(self);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(out) = self.outputs.pop_front() {
            return Some(out);
        }
        if self.in_flight.is_none() && self.retry_at.is_none() {
            if let Some(w) = self.waiting.front() {
                self.in_flight = Some(w.seq);
                return Some(Output::Upload {
                    seq: w.seq,
                    bytes: w.bytes.clone(),
                    timeout: self.settings.request_timeout,
                });
            }
        }
        None
    }

    /// When [`Uploader::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flush = self.open_since.map(|s| s + self.settings.flush_after);
        match (flush, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Batches and their bytes waiting for upload (not counting the open one).
    pub fn backlog(&self) -> (usize, u64) {
        (self.waiting.len(), self.waiting_bytes)
    }

    /// Records gathered but not yet in a batch.
    pub fn open_records(&self) -> usize {
        self.open.len()
    }

    /// Closes the open batch now (at shutdown, so its records are saved).
    pub fn flush(&mut self) {
        if !self.open.is_empty() || self.unreported_drops > 0 {
            self.close_batch();
        }
        crate::machine::debug_check(self);
    }

    fn close_batch(&mut self) {
        self.open_since = None;
        let records = std::mem::take(&mut self.open);
        if records.is_empty() && self.unreported_drops == 0 {
            return;
        }
        let carried = std::mem::take(&mut self.unreported_drops);
        self.seal_batch(records, carried);
    }

    /// Makes `records` a batch to save and upload; while its JSON would be over
    /// what the management plane accepts ([`MAX_BATCH_BYTES`]: records with
    /// very long paths), the records are split in two batches instead, so none
    /// is refused for its size.
    fn seal_batch(&mut self, mut records: Vec<RequestRecord>, carried: u64) {
        let seq = self.next_seq;
        let mut batch = Batch {
            id: Batch::id_for(&self.instance, seq),
            instance: self.instance.clone(),
            dropped: carried,
            records: Vec::new(),
        };
        let count = records.len() as u64;
        batch.records = std::mem::take(&mut records);
        let json = batch.to_json();
        if json.len() > MAX_BATCH_BYTES && batch.records.len() > 1 {
            let mut first = batch.records;
            let second = first.split_off(first.len() / 2);
            self.seal_batch(first, carried);
            self.seal_batch(second, 0);
            return;
        }
        self.next_seq += 1;
        let bytes = Bytes::from(json);
        self.outputs.push_back(Output::Save {
            seq,
            bytes: bytes.clone(),
        });
        self.push_waiting(Waiting {
            seq,
            bytes,
            records: count,
            carried,
        });
    }

    /// Adds a batch, dropping the oldest ones not in flight while over the bound.
    fn push_waiting(&mut self, w: Waiting) {
        self.waiting_bytes += w.bytes.len() as u64;
        self.waiting.push_back(w);
        let mut dropped = 0;
        let mut carried = 0;
        while self.waiting_bytes > self.settings.buffer_bytes {
            let victim = self
                .waiting
                .iter()
                .position(|w| Some(w.seq) != self.in_flight);
            // Always keep the newest batch, however large.
            let Some(i) = victim.filter(|&i| i + 1 < self.waiting.len()) else {
                break;
            };
            if let Some(old) = self.waiting.remove(i) {
                self.waiting_bytes -= old.bytes.len() as u64;
                dropped += old.records;
                carried += old.carried;
                self.outputs.push_back(Output::Remove { seq: old.seq });
            }
        }
        self.unreported_drops += carried;
        if dropped > 0 {
            self.unreported_drops += dropped;
            self.outputs.push_back(Output::Dropped {
                records: dropped,
                reason: "the telemetry buffer is full: the oldest records were dropped".into(),
            });
        }
    }

    /// Removes batch `seq` from the buffer; how many records it held and how
    /// many drops it reported.
    fn forget(&mut self, seq: u64) -> (u64, u64) {
        let Some(i) = self.waiting.iter().position(|w| w.seq == seq) else {
            return (0, 0);
        };
        let Some(w) = self.waiting.remove(i) else {
            return (0, 0);
        };
        self.waiting_bytes -= w.bytes.len() as u64;
        self.outputs.push_back(Output::Remove { seq });
        (w.records, w.carried)
    }
}

/// The uploader under the machine contract ([`crate::machine`]). Invariants:
///
/// 1. **The buffer's size is known.** `waiting_bytes` is the sum of the
///    waiting batches' sizes.
/// 2. **Batches keep their order.** Waiting sequence numbers rise strictly and
///    stay below the next one to be given out, so a batch is never sent under
///    another's id.
/// 3. **One upload at a time, of a batch still kept.** The batch in flight is
///    one of the waiting batches, and no retry is scheduled while it flies.
/// 4. **The bound holds, but for what cannot be dropped.** Over the bound, the
///    buffer holds at most two batches: the newest, and the one that was in
///    flight when it came.
/// 5. **Records are never stranded.** An open batch has a start time (so a
///    flush deadline), and is smaller than a full batch.
impl crate::machine::Machine for Uploader {
    type Output = Output;

    fn poll_output(&mut self) -> Option<Output> {
        Uploader::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Uploader::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Uploader::handle_timeout(self, now)
    }

    fn check_invariants(&self) {
        let sum: u64 = self.waiting.iter().map(|w| w.bytes.len() as u64).sum();
        assert_eq!(self.waiting_bytes, sum, "buffer size out of step");
        let mut last = None;
        for w in &self.waiting {
            assert!(last.is_none_or(|l| l < w.seq), "batches out of order");
            assert!(w.seq < self.next_seq, "a batch with an id not given out");
            last = Some(w.seq);
        }
        if let Some(seq) = self.in_flight {
            assert!(
                self.waiting.iter().any(|w| w.seq == seq),
                "batch {seq} in flight but no longer kept"
            );
            assert!(
                self.retry_at.is_none(),
                "a retry scheduled during an upload"
            );
        }
        if self.waiting_bytes > self.settings.buffer_bytes {
            assert!(
                self.waiting.len() <= 2,
                "over the bound with {} batches",
                self.waiting.len()
            );
        }
        if !self.open.is_empty() {
            assert!(
                self.open_since.is_some(),
                "an open batch with no flush deadline"
            );
            assert!(
                self.open.len() < self.settings.batch_records.max(1),
                "a full batch left open"
            );
        }
    }
}
