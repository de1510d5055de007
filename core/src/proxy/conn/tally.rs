//! What a connection's machine notes about the request in progress, for its
//! telemetry record: timings, byte counts, where it was routed, how it ended.

use std::sync::Arc;
use std::time::Instant;

use crate::config::CompiledConfig;
use crate::policy::context::LastError;
use crate::telemetry::metrics::Observation;
use crate::telemetry::record::{CacheStatus, ErrorInfo, RequestRecord};
use crate::telemetry::trace_context::{hex, SpanContext, TRACEPARENT_LEN};
use crate::telemetry::RecordSink;

/// Why the gateway itself failed a request: (source, reason).
pub(super) type GatewayError = (&'static str, &'static str);

/// Notes on the request in progress.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// A request is being noted (its head was read).
    active: bool,
    started: Option<Instant>,
    /// Bytes read from / written to the client before this request.
    in_mark: u64,
    out_mark: u64,
    config: Option<Arc<CompiledConfig>>,
    api: Option<usize>,
    operation: Option<usize>,
    product: Option<usize>,
    subscription: Option<usize>,
    /// Kept only when records are wanted; reused, so steady traffic allocates
    /// nothing for them.
    method: String,
    path: String,
    status: u16,
    backend_since: Option<Instant>,
    backend_us: u64,
    error: Option<GatewayError>,
    policy_error: Option<LastError>,
    cache: CacheStatus,
    request_id: Option<String>,
    span: Option<SpanContext>,
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Tally {
    /// A request starts at `now`; `consumed` bytes of the client's stream came
    /// before it and `produced` bytes of responses went out before it.
    pub(super) fn begin(&mut self, now: Instant, consumed: u64, produced: u64) {
        self.active = true;
        self.started = Some(now);
        self.in_mark = consumed;
        self.out_mark = produced;
        self.config = None;
        self.api = None;
        self.operation = None;
        self.product = None;
        self.subscription = None;
        self.method.clear();
        self.path.clear();
        self.status = 0;
        self.backend_since = None;
        self.backend_us = 0;
        self.error = None;
        self.policy_error = None;
        self.cache = CacheStatus::None;
        self.request_id = None;
        self.span = None;
    }

    /// The request's trace and the gateway's span in it.
    pub(super) fn trace(&mut self, span: SpanContext) {
        self.span = Some(span);
    }

    /// The `traceparent` to send the backend, when tracing.
    pub(super) fn traceparent(&self) -> Option<[u8; TRACEPARENT_LEN]> {
        self.span.map(|s| s.traceparent())
    }

    /// Stops noting (a request that is not reported, like APIM's status probe).
    pub(super) fn forget(&mut self) {
        self.active = false;
        self.config = None;
    }

    /// Keeps the method and path for the record.
    pub(super) fn request_line(&mut self, method: &http::Method, path: &[u8]) {
        self.method.push_str(method.as_str());
        self.path.push_str(&String::from_utf8_lossy(path));
    }

    /// The request was routed to (`api`, `operation`) of `config`.
    pub(super) fn routed(&mut self, config: &Arc<CompiledConfig>, api: usize, operation: usize) {
        self.config = Some(config.clone());
        self.api = Some(api);
        self.operation = Some(operation);
    }

    /// The request was let in through `product` and `subscription`.
    pub(super) fn access(&mut self, product: Option<usize>, subscription: Option<usize>) {
        self.product = product;
        self.subscription = subscription;
    }

    /// The status sent to the client.
    pub(super) fn status(&mut self, status: u16) {
        self.status = status;
    }

    /// The gateway failed the request itself.
    pub(super) fn error(&mut self, source: &'static str, reason: &'static str) {
        if self.active && self.error.is_none() {
            self.error = Some((source, reason));
        }
    }

    /// A backend connection was asked for.
    pub(super) fn backend_start(&mut self, now: Instant) {
        if self.active && self.backend_since.is_none() {
            self.backend_since = Some(now);
        }
    }

    /// The backend's part is over (response read, or failed).
    pub(super) fn backend_end(&mut self, now: Instant) {
        if let Some(since) = self.backend_since.take() {
            self.backend_us = self
                .backend_us
                .saturating_add(micros(now.saturating_duration_since(since)));
        }
    }

    /// What the policies knew: the request id, the cache, the last error.
    pub(super) fn policy_outcome(
        &mut self,
        request_id: &mut String,
        cache: CacheStatus,
        last_error: Option<&LastError>,
        want_id: bool,
    ) {
        if want_id {
            self.request_id = Some(std::mem::take(request_id));
        }
        self.cache = cache;
        if let Some(e) = last_error {
            self.policy_error = Some(e.clone());
        }
    }

    /// Whether a request is being noted.
    pub(super) fn active(&self) -> bool {
        self.active
    }

    /// Reports the request to `telemetry` and stops noting. `(consumed,
    /// produced)` are the stream positions now; `next_id` makes a request id
    /// for a record of a request that had none.
    pub(super) fn report(
        &mut self,
        telemetry: &dyn RecordSink,
        now: Instant,
        (consumed, produced): (u64, u64),
        client_ip: &str,
        unix_ms: impl Fn(Instant) -> i64,
        next_id: impl FnOnce() -> String,
    ) {
        if !self.active {
            return;
        }
        self.active = false;
        self.backend_end(now);
        let started = self.started.unwrap_or(now);
        let total_us = micros(now.saturating_duration_since(started));
        let backend_us = self.backend_us.min(total_us);
        let config = self.config.take();
        let api = config.as_deref().zip(self.api).map(|(c, i)| c.api(i));
        let operation = config
            .as_deref()
            .zip(self.api.zip(self.operation))
            .map(|(c, (a, o))| c.operation(a, o));
        let product = config
            .as_deref()
            .zip(self.product)
            .map(|(c, p)| c.product_info(p).id.as_str());
        let observation = Observation {
            api: api.map_or("", |a| a.id.as_str()),
            operation: operation.map_or("", |o| o.id.as_str()),
            product: product.unwrap_or(""),
            status: self.status,
            bytes_in: consumed.saturating_sub(self.in_mark),
            bytes_out: produced.saturating_sub(self.out_mark),
            total_us,
            backend_us,
        };
        let settings = telemetry.settings();
        let tally = &mut *self;
        crate::telemetry::report(
            telemetry,
            &observation,
            api.and_then(|a| a.telemetry.as_ref()),
            |weight| {
                let subscription = config
                    .as_deref()
                    .zip(tally.subscription)
                    .map(|(c, s)| c.subscription_info(s, false).id.clone());
                let error = match (&tally.policy_error, tally.error) {
                    (Some(e), _) => Some(ErrorInfo {
                        source: e.source.clone(),
                        reason: e.reason.clone(),
                    }),
                    (None, Some((source, reason))) => Some(ErrorInfo {
                        source: source.into(),
                        reason: reason.into(),
                    }),
                    (None, None) if tally.status == 0 => Some(ErrorInfo {
                        source: "client".into(),
                        reason: "ClientConnectionFailure".into(),
                    }),
                    (None, None) => None,
                };
                RequestRecord {
                    timestamp_ms: unix_ms(started),
                    request_id: tally.request_id.take().unwrap_or_else(next_id),
                    gateway: settings.gateway.to_string(),
                    instance: settings.instance.to_string(),
                    api: observation.api.to_string(),
                    operation: observation.operation.to_string(),
                    product: product.map(String::from),
                    subscription,
                    method: tally.method.clone(),
                    path: tally.path.clone(),
                    status: tally.status,
                    client_ip: client_ip.to_string(),
                    bytes_in: observation.bytes_in,
                    bytes_out: observation.bytes_out,
                    total_us,
                    backend_us,
                    gateway_us: total_us - backend_us,
                    cache: tally.cache,
                    error,
                    weight,
                    trace_id: tally.span.map(|s| hex(&s.trace_id)),
                    span_id: tally.span.map(|s| hex(&s.span_id)),
                    parent_span_id: tally.span.and_then(|s| s.parent_id).map(|p| hex(&p)),
                }
            },
        );
    }
}
