//! The OTLP span exporter: gathers the spans of traced requests, decides when
//! a batch goes to the collector, and keeps at most one export in flight.
//!
//! A machine under the one contract ([`crate::machine`]): the driver feeds it
//! records ([`OtlpExporter::handle_spans`]), export results
//! ([`OtlpExporter::handle_export_result`]) and time, and does what
//! [`OtlpExporter::poll_output`] asks: send an encoded batch
//! ([`Output::Export`], built into a request by [`otlp::export_request`]) or
//! log a failure ([`Output::Dropped`]).
//!
//! Spans wait until [`ExportSettings::per_export`] of them are there or the
//! oldest has waited [`ExportSettings::export_after`]; then up to
//! `per_export` go in one export. A failed export's spans are dropped, never
//! resent (spans are best effort); spans beyond
//! [`ExportSettings::waiting`] are dropped as they arrive. Failures are
//! counted, and the first and then every hundredth is reported, so a
//! collector that is down does not flood the log.
//!
//! Invariants (checked by [`Machine::check_invariants`]):
//! - at most [`ExportSettings::waiting`] spans wait;
//! - the oldest-span time is set exactly when spans wait;
//! - at most one export is in flight, its number was given out, and an
//!   export output not yet taken is the one in flight;
//! - with no export in flight, fewer than `per_export` spans wait (a full
//!   batch never waits for time).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::otlp;
use super::record::RequestRecord;
use crate::http::Response;
use crate::machine::{debug_check, Machine};

/// When and how much the exporter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSettings {
    /// Spans sent in one export at most; more wait for the next.
    pub per_export: usize,
    /// Spans waiting for export at most; more are dropped.
    pub waiting: usize,
    /// How long spans wait for more before they are exported.
    pub export_after: Duration,
    /// Time allowed for one export.
    pub timeout: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            per_export: 512,
            waiting: 8 * 512,
            export_after: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// How an export ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportResult {
    /// The collector took the spans.
    Exported,
    /// Refused, unreachable or timed out: the spans are dropped.
    Failed(String),
}

/// What a collector's response to an export means.
pub fn export_result(response: &Response) -> ExportResult {
    if (200..300).contains(&response.status) {
        ExportResult::Exported
    } else {
        ExportResult::Failed(format!("collector answered {}", response.status))
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send export `seq` (OTLP protobuf `body`) and answer with
    /// [`OtlpExporter::handle_export_result`].
    Export {
        /// Which.
        seq: u64,
        /// The encoded `ExportTraceServiceRequest`.
        body: Bytes,
        /// Spans in it.
        spans: u64,
        /// Time allowed.
        timeout: Duration,
    },
    /// An export failed and its spans are dropped: log it (only the first
    /// failure and every hundredth are reported).
    Dropped {
        /// Failures so far (failed exports and spans dropped as they arrived).
        failures: u64,
        /// Why, for the log.
        reason: String,
    },
}

/// The exporter; see the module documentation.
#[derive(Debug)]
pub struct OtlpExporter {
    settings: ExportSettings,
    gateway: String,
    instance: String,
    spans: Vec<RequestRecord>,
    /// When the oldest waiting span arrived.
    since: Option<Instant>,
    in_flight: Option<u64>,
    next_seq: u64,
    failures: u64,
    /// Spans dropped because too many waited.
    overflowed: u64,
    outputs: VecDeque<Output>,
}

impl OtlpExporter {
    /// An exporter for gateway `gateway`'s process `instance` (the spans'
    /// resource attributes).
    pub fn new(gateway: &str, instance: &str, settings: ExportSettings) -> Self {
        OtlpExporter {
            settings,
            gateway: gateway.to_string(),
            instance: instance.to_string(),
            spans: Vec::new(),
            since: None,
            in_flight: None,
            next_seq: 0,
            failures: 0,
            overflowed: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Finished requests' records; those with a span wait for export.
    pub fn handle_spans(&mut self, records: &[RequestRecord], now: Instant) {
        for r in records.iter().filter(|r| r.span_id.is_some()) {
            if self.spans.len() >= self.settings.waiting {
                self.failures += 1;
                self.overflowed += 1;
                continue;
            }
            self.spans.push(r.clone());
        }
        if !self.spans.is_empty() {
            self.since.get_or_insert(now);
        }
        self.export_if_due(now);
        debug_check(self);
    }

    /// Export `seq` ended; an answer to anything but the export in flight is
    /// ignored.
    pub fn handle_export_result(&mut self, seq: u64, result: ExportResult, now: Instant) {
        if self.in_flight != Some(seq) || self.export_queued() {
            return;
        }
        self.in_flight = None;
        if let ExportResult::Failed(reason) = result {
            self.failures += 1;
            if self.failures % 100 == 1 {
                self.outputs.push_back(Output::Dropped {
                    failures: self.failures,
                    reason,
                });
            }
        }
        self.export_if_due(now);
        debug_check(self);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.export_if_due(now);
        debug_check(self);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`OtlpExporter::handle_timeout`] is due next: when the oldest
    /// span has waited long enough, unless an export is in flight (its result
    /// moves the exporter then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.since.map(|s| s + self.settings.export_after)
    }

    /// Spans waiting for export.
    pub fn waiting(&self) -> usize {
        self.spans.len()
    }

    /// Spans dropped as they arrived because too many waited, so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Failed exports and spans dropped as they arrived, so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    fn export_queued(&self) -> bool {
        self.outputs
            .iter()
            .any(|o| matches!(o, Output::Export { .. }))
    }

    fn due(&self, now: Instant) -> bool {
        self.spans.len() >= self.settings.per_export
            || self
                .since
                .is_some_and(|s| now >= s + self.settings.export_after)
    }

    /// Starts exports while one is due and none is in flight (a batch without
    /// one encodable span is dropped without a request).
    fn export_if_due(&mut self, now: Instant) {
        while self.in_flight.is_none() && !self.spans.is_empty() && self.due(now) {
            let n = self.spans.len().min(self.settings.per_export.max(1));
            let batch: Vec<RequestRecord> = self.spans.drain(..n).collect();
            self.since = if self.spans.is_empty() {
                None
            } else {
                Some(now)
            };
            let Some(body) = otlp::encode(&batch, &self.gateway, &self.instance) else {
                continue;
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight = Some(seq);
            self.outputs.push_back(Output::Export {
                seq,
                body: Bytes::from(body),
                spans: n as u64,
                timeout: self.settings.timeout,
            });
        }
    }
}

impl Machine for OtlpExporter {
    type Output = Output;

    fn poll_output(&mut self) -> Option<Output> {
        OtlpExporter::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        OtlpExporter::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        OtlpExporter::handle_timeout(self, now)
    }

    fn check_invariants(&self) {
        assert!(
            self.spans.len() <= self.settings.waiting,
            "{} spans wait, over the bound",
            self.spans.len()
        );
        assert_eq!(
            self.since.is_some(),
            !self.spans.is_empty(),
            "the oldest span's time out of step"
        );
        let queued: Vec<u64> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Export { seq, .. } => Some(*seq),
                Output::Dropped { .. } => None,
            })
            .collect();
        assert!(queued.len() <= 1, "two exports queued");
        if let Some(seq) = queued.first() {
            assert_eq!(self.in_flight, Some(*seq), "a queued export not in flight");
        }
        if let Some(seq) = self.in_flight {
            assert!(seq < self.next_seq, "export {seq} was never given out");
        } else {
            assert!(
                self.spans.len() < self.settings.per_export.max(1),
                "a full batch waits with no export in flight"
            );
        }
    }
}
