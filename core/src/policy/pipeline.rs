//! Running a request's policies: inbound, backend, outbound and on-error across
//! the global, product, API and operation scopes.
//!
//! The pipeline is a sans-IO machine. `run` executes policies until it needs
//! something from outside (the backend's response, another service's answer, a
//! timer, shared state) and returns that as a `Step`; the connection performs it
//! and calls the matching `*_done` method, then `run` again. Nothing here
//! allocates per operation beyond what the policies themselves produce.
//!
//! Shared state (counters, concurrency slots, the cache, key sets) is reached
//! only through the store protocol (`policy::store`): a `Step::Store` the
//! pipeline waits for, and one-way writes in `side.store_writes`. What each
//! policy does when the store answers `Unavailable` is in that module's docs.
//!
//! A [`Machine`]: besides the step `run` returns (what the pipeline waits
//! for, answered through `forward_done`, `call_done`, `store_done`,
//! `key_sets_refreshed`), a run's side outputs (`trace` records and
//! `send-one-way-request` calls, [`PipelineOutput`]) are drained with
//! `poll_output` after every input, and a `retry` interval is its one timer
//! (`poll_timeout`, then `handle_timeout`). One-way store writes carry the
//! time, so they are taken with [`SideEffects::take_store_writes`].
//!
//! Invariants (checked by `check_invariants` after every input in debug
//! builds): the pipeline waits for at most one thing at a time; a store answer
//! is expected exactly while waiting for one; a finished pipeline waits for no
//! timer; no more redirects are followed than the limit. The slots it holds are
//! given back (as `Release` writes) exactly once, on leaving their block, when
//! the response is decided, or on `abandon`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::actions::{Action, ForwardSpec};
use super::context::{Context, LastError, Response, Url};
use super::cors::{CorsOutcome, PreflightOutcome};
use super::emit_metric::MetricSample;
use super::error::Failure;
use super::jwt::KeySetsSnapshot;
use super::program::{Document, Needs, Op, Origin, SectionKind};
use super::quota::{QuotaByKey, QuotaCounter, ResolvedQuotaKey};
use super::rate_limit::{RateLimitByKey, RateLimitOutputs, RateOutcome, ResolvedRateKey};
use super::respond::{json_error, TraceRecord};
use super::response_cache::{encode_response, CacheLookup, CacheStatus};
use super::send::CallRequest;
use super::store::{StoreOp, StoreOps, StoreRequest};
use super::transform::{eval, expr_failure, retarget, SetBackendService};
use crate::callout::CalloutTarget;
use crate::expr::Template;
use crate::expr::Value;
use crate::http::percent::parse_query;
use crate::http::ServiceUrl;
use crate::machine::{debug_check, Machine};

/// The documents that apply to a request, by scope; `None` inherits.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Indexed by `Level as usize`.
    pub docs: [Option<Arc<Document>>; 4],
}

impl Chain {
    /// Whether no document changes anything (the request is proxied as is).
    pub fn is_empty(&self) -> bool {
        self.docs.iter().all(Option::is_none)
    }

    /// What the documents need buffered.
    pub fn needs(&self) -> Needs {
        self.docs
            .iter()
            .flatten()
            .fold(Needs::default(), |n, d| n.union(d.needs))
    }
}

/// What the pipeline needs from the connection before it can go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send `context.Request` to the backend at `context.Request.Url`; put its
    /// response in `context.Response` and call `forward_done`.
    Forward(ForwardSpec),
    /// Make this call and report with `call_done`.
    Call(CallRequest),
    /// Make these calls at once and report with `calls_done`: when all have
    /// finished, or with `any` when the first has (cancelling the others).
    CallAll {
        /// The calls, in order.
        requests: Vec<CallRequest>,
        /// Go on at the first answer.
        any: bool,
    },
    /// Ask the store for this (counters, a slot, a cache entry, key sets)
    /// and report its answer with `store_done`.
    Store(StoreRequest),
    /// A token names a signing key no OpenID key set holds: fetch these
    /// configurations' key sets again (install them in the shared key sets) and
    /// report with `key_sets_refreshed`; the `validate-jwt` then runs again.
    RefreshKeySets(Vec<String>),
    /// Call `sleep_done` at this time.
    Sleep(Instant),
    /// Finished: send `context.Response` to the client.
    Respond,
}

/// Why the backend call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFailure {
    /// `LastError.Reason`, e.g. `BackendConnectionFailure`, `Timeout`.
    pub reason: &'static str,
    /// `LastError.Message`.
    pub message: String,
    /// Status the client gets unless `on-error` changes it.
    pub status: u16,
}

/// Where execution stands within a section: a scope (or the built-in root) and
/// the next operation.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// 0..=3: `Level`; `ROOT`: the built-in defaults beneath the global scope.
    level: u8,
    pc: u32,
}

const ROOT: u8 = 4;

/// What the pipeline is suspended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Nothing,
    Forward(ForwardSpec),
    Call {
        origin: (u8, u32),
        ignore_error: bool,
    },
    /// The calls of a `wait` (see `pipeline/wait_calls.rs`).
    Calls {
        origin: (u8, u32),
    },
    /// The `retry` interval, until this time.
    Sleep(Instant),
    /// A store answer, for the policy at `origin` (see [`Asked`]).
    Store {
        origin: (u8, u32),
    },
    KeySets,
}

/// Extra outputs a run produces alongside its steps.
#[derive(Debug, Default)]
pub struct SideEffects {
    /// Records from `trace` policies.
    pub traces: Vec<TraceRecord>,
    /// `send-one-way-request` calls to make; nobody waits for them.
    pub one_way: Vec<CallRequest>,
    /// Writes to shared state nobody waits for (cache writes, deferred
    /// counting, slots given back), for the connection to send as one
    /// one-way store request (`take_store_writes`).
    pub store_writes: Vec<StoreOp>,
    /// Custom metric samples (`emit-metric`), for the telemetry sink.
    pub metrics: Vec<MetricSample>,
}

impl SideEffects {
    /// The pending writes as one store request at `now` (`now_unix` in
    /// seconds), if there are any.
    pub fn take_store_writes(&mut self, now: Instant, now_unix: i64) -> Option<StoreRequest> {
        if self.store_writes.is_empty() {
            return None;
        }
        Some(StoreRequest {
            ops: StoreOps::from_vec(std::mem::take(&mut self.store_writes)),
            now,
            now_unix,
        })
    }
}

/// A side output of a run, drained with [`Machine::poll_output`] after every
/// input (in order: traces, then one-way calls).
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineOutput {
    /// A `trace` policy's record, for the log.
    Trace(TraceRecord),
    /// A `send-one-way-request` call to make; nobody waits for it.
    OneWay(CallRequest),
    /// A custom metric sample, for the telemetry sink.
    Metric(MetricSample),
}

impl Machine for Pipeline {
    type Output = PipelineOutput;

    fn poll_output(&mut self) -> Option<PipelineOutput> {
        // Both lists are a few entries at most: taking from the front is cheap.
        if !self.side.traces.is_empty() {
            return Some(PipelineOutput::Trace(self.side.traces.remove(0)));
        }
        if !self.side.one_way.is_empty() {
            return Some(PipelineOutput::OneWay(self.side.one_way.remove(0)));
        }
        if !self.side.metrics.is_empty() {
            return Some(PipelineOutput::Metric(self.side.metrics.remove(0)));
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.waiting {
            Waiting::Sleep(at) => Some(at),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.waiting, Waiting::Sleep(at) if at <= now) {
            self.waiting = Waiting::Nothing;
        }
        debug_check(self);
    }

    fn check_invariants(&self) {
        assert!(
            matches!(self.waiting, Waiting::Store { .. }) == self.asked.is_some(),
            "a store answer is expected exactly while waiting for one"
        );
        assert!(
            !(self.done && matches!(self.waiting, Waiting::Sleep(_))),
            "a finished pipeline waits for no timer"
        );
        assert!(
            self.redirects <= MAX_REDIRECTS,
            "no more redirects than the limit"
        );
    }
}

/// Read-only facts the policies need besides the context.
pub struct Env<'a> {
    /// Now (for timers and rate windows).
    pub now: Instant,
    /// Backends by id, for `set-backend-service backend-id`.
    pub backend: &'a dyn Fn(&str) -> Option<&'a ServiceUrl>,
    /// Backend TLS settings and certificates (`set-backend-service`,
    /// `authentication-certificate`).
    pub tls: &'a dyn super::auth_cert::TlsLookup,
}

mod preflight;
mod quota_once;
mod store_answers;
mod wait_calls;
use store_answers::Asked;

/// The policy machine of one request.
#[derive(Debug)]
pub struct Pipeline {
    chain: Chain,
    section: SectionKind,
    frames: SmallVec<[Frame; 6]>,
    /// Attempts so far per active `retry`: (level, slot, attempts).
    retries: SmallVec<[(u8, u16, u32); 2]>,
    waiting: Waiting,
    done: bool,
    forwarded: bool,
    /// Where the pending `send-request` puts its response.
    call_variable: Option<String>,
    /// Counting that waits for the response (increment conditions, bandwidth).
    deferred: Vec<Deferred>,
    /// `finish` ran.
    finished: bool,
    /// A redirect to follow with this `forward-request`.
    redirect: Option<ForwardSpec>,
    /// Redirects followed so far.
    redirects: u8,
    /// Bandwidth counting that waits for a streamed body's length.
    after_stream: Vec<Deferred>,
    /// The `cache-lookup` of this request and its key, for `cache-store`.
    lookup: Option<(Arc<CacheLookup>, String)>,
    /// The response came from the cache.
    cache_hit: bool,
    /// The variable and default of a pending `cache-lookup-value`.
    value_lookup: Option<(String, Option<Template>)>,
    /// Headers rate limits add to the client's response.
    extra_headers: Vec<(String, String)>,
    /// `limit-concurrency` slots held: (level, slot, key).
    permits: SmallVec<[(u8, u16, String); 1]>,
    /// What the pending store request is for.
    asked: Option<Asked>,
    /// Key sets the store gave for the `validate-jwt` about to run again.
    key_sets: Option<Arc<KeySetsSnapshot>>,
    /// Key sets were fetched again for this request once already: a token
    /// that still names an unknown key fails instead of asking again.
    keys_refreshed: bool,
    /// Traces and one-way calls, for the connection to drain.
    pub side: SideEffects,
    /// A CORS preflight run: only `cors` runs.
    preflight: bool,
    /// `quota-by-key` keys counted in this request (each once).
    quota_keys: quota_once::CountedKeys,
    /// The calls of the `wait` waited for.
    pending_calls: wait_calls::PendingCalls,
}

impl Pipeline {
    /// A pipeline at the start of `inbound`.
    pub fn new(chain: Chain) -> Pipeline {
        let mut p = Pipeline {
            chain,
            section: SectionKind::Inbound,
            frames: SmallVec::new(),
            retries: SmallVec::new(),
            waiting: Waiting::Nothing,
            done: false,
            forwarded: false,
            call_variable: None,
            deferred: Vec::new(),
            finished: false,
            redirect: None,
            redirects: 0,
            after_stream: Vec::new(),
            lookup: None,
            cache_hit: false,
            value_lookup: None,
            extra_headers: Vec::new(),
            permits: SmallVec::new(),
            asked: None,
            key_sets: None,
            keys_refreshed: false,
            side: SideEffects::default(),
            preflight: false,
            quota_keys: Vec::new(),
            pending_calls: Vec::new(),
        };
        p.enter(SectionKind::Inbound);
        p
    }

    /// A pipeline for a CORS preflight: only the `cors` policies of inbound run
    /// (see `pipeline/preflight.rs`).
    pub fn preflight(chain: Chain) -> Pipeline {
        let mut p = Pipeline::new(chain);
        p.preflight = true;
        p
    }

    /// The section being run.
    pub fn section(&self) -> SectionKind {
        self.section
    }

    /// Whether the backend was called.
    pub fn forwarded(&self) -> bool {
        self.forwarded
    }

    /// Runs policies until the next step.
    pub fn run(&mut self, ctx: &mut Context, env: &Env<'_>) -> Step {
        let step = self.run_inner(ctx, env);
        if matches!(step, Step::Respond) && !self.finished {
            self.finished = true;
            self.finish(ctx);
        }
        debug_check(self);
        step
    }

    fn run_inner(&mut self, ctx: &mut Context, env: &Env<'_>) -> Step {
        if let Some(spec) = self.redirect.take() {
            ctx.response = None;
            return self.forward(spec);
        }
        if self.done {
            return Step::Respond;
        }
        if self.waiting != Waiting::Nothing {
            // Not resumed yet: ask again for the same thing is impossible to
            // reconstruct, so treat it as a programming error turned into a 500.
            return self.fail_internal(ctx, "pipeline resumed before its step completed");
        }
        loop {
            let Some(frame) = self.frames.last().copied() else {
                if let Some(step) = self.section_finished(ctx) {
                    return step;
                }
                continue;
            };
            if frame.level == ROOT {
                self.frames.pop();
                // The built-in defaults: only the backend section does something.
                if self.section == SectionKind::Backend {
                    return self.forward(ForwardSpec::DEFAULT);
                }
                continue;
            }
            let level = frame.level;
            let Some(doc) = self.chain.docs[usize::from(level)].clone() else {
                self.frames.pop();
                continue;
            };
            let Some(section) = doc.section(self.section) else {
                self.frames.pop();
                continue;
            };
            let Some(op) = section.ops.get(frame.pc as usize) else {
                self.frames.pop();
                continue;
            };
            if let Some(f) = self.frames.last_mut() {
                f.pc += 1;
            }
            if self.preflight {
                match preflight::filter(op) {
                    preflight::Filter::Run => {}
                    preflight::Filter::Skip => continue,
                    preflight::Filter::Jump(t) => {
                        self.set_pc(t);
                        continue;
                    }
                }
            }
            match op {
                Op::Base => {
                    let parent = self.parent_of(level, self.section);
                    self.frames.push(Frame {
                        level: parent,
                        pc: 0,
                    });
                }
                Op::Jump(t) => self.set_pc(*t),
                Op::JumpUnless(cond, t, origin) => match cond.eval(ctx) {
                    Ok(v) => {
                        if !truthy(&v) {
                            self.set_pc(*t);
                        }
                    }
                    Err(e) => {
                        if let Some(step) = self.fail(ctx, expr_failure(e), &doc, *origin) {
                            return step;
                        }
                    }
                },
                Op::RetryStart(slot) => {
                    if !self
                        .retries
                        .iter()
                        .any(|(l, s, _)| *l == level && s == slot)
                    {
                        self.retries.push((level, *slot, 0));
                    }
                }
                Op::RetryEnd {
                    slot,
                    start,
                    spec,
                    origin,
                } => {
                    let again = match spec.condition.eval(ctx) {
                        Ok(v) => truthy(&v),
                        Err(e) => {
                            self.retries.retain(|(l, s, _)| !(*l == level && s == slot));
                            if let Some(step) = self.fail(ctx, expr_failure(e), &doc, *origin) {
                                return step;
                            }
                            continue;
                        }
                    };
                    let entry = self
                        .retries
                        .iter_mut()
                        .find(|(l, s, _)| *l == level && s == slot);
                    let attempts = match entry {
                        Some(e) if again && e.2 < spec.count => {
                            e.2 += 1;
                            Some(e.2)
                        }
                        _ => None,
                    };
                    match attempts {
                        Some(n) => {
                            self.set_pc(start + 1);
                            let wait = spec.wait_before(n);
                            if wait > Duration::ZERO {
                                let at = env.now + wait;
                                self.waiting = Waiting::Sleep(at);
                                return Step::Sleep(at);
                            }
                        }
                        None => self.retries.retain(|(l, s, _)| !(*l == level && s == slot)),
                    }
                }
                Op::ReleaseConcurrency(slot) => {
                    let writes = &mut self.side.store_writes;
                    self.permits.retain(|(l, s, key)| {
                        let held = *l == level && s == slot;
                        if held {
                            writes.push(StoreOp::Release {
                                key: std::mem::take(key),
                            });
                        }
                        !held
                    });
                }
                Op::Act(action, origin) => match self.act(action, ctx, env, level) {
                    Ok(None) => {}
                    Ok(Some(step)) => {
                        match step {
                            Step::Call(_) => {
                                if let Waiting::Call { origin: o, .. } = &mut self.waiting {
                                    *o = (level, *origin);
                                }
                            }
                            Step::CallAll { .. } => {
                                if let Waiting::Calls { origin: o } = &mut self.waiting {
                                    *o = (level, *origin);
                                }
                            }
                            Step::Store(_) => {
                                if let Waiting::Store { origin: o } = &mut self.waiting {
                                    *o = (level, *origin);
                                }
                                // The same validate-jwt runs again with the keys.
                                if matches!(self.asked, Some(Asked::KeySets)) {
                                    if let Some(f) = self.frames.last_mut() {
                                        f.pc = f.pc.saturating_sub(1);
                                    }
                                }
                            }
                            // The same validate-jwt runs again once the keys are in.
                            Step::RefreshKeySets(_) => {
                                if let Some(f) = self.frames.last_mut() {
                                    f.pc = f.pc.saturating_sub(1);
                                }
                            }
                            _ => {}
                        }
                        return step;
                    }
                    Err(failure) => {
                        if let Some(step) = self.fail(ctx, failure, &doc, *origin) {
                            return step;
                        }
                    }
                },
            }
        }
    }

    /// The backend answered (its response is in `context.Response`) or failed.
    pub fn forward_done(&mut self, ctx: &mut Context, result: Result<(), ForwardFailure>) {
        self.take_forward_result(ctx, result);
        debug_check(self);
    }

    fn take_forward_result(&mut self, ctx: &mut Context, result: Result<(), ForwardFailure>) {
        let Waiting::Forward(spec) = self.waiting else {
            return;
        };
        self.waiting = Waiting::Nothing;
        match result {
            Ok(()) => {
                let status = ctx.response.as_ref().map_or(200, |r| r.status);
                if spec.follow_redirects && self.redirects < MAX_REDIRECTS {
                    if let Some(next) = redirect_target(ctx, status) {
                        self.redirects += 1;
                        // As browsers and .NET's HttpClient do: after a 303, or a
                        // 301/302 to a POST, the next request is a GET without a body.
                        if status == 303
                            || (matches!(status, 301 | 302) && ctx.request.method == "POST")
                        {
                            ctx.request.method = "GET".into();
                            ctx.request.body = None;
                            ctx.request.headers.remove("content-type");
                        }
                        ctx.request.url = next;
                        ctx.request.base_path = String::new();
                        self.redirect = Some(spec);
                        return;
                    }
                }
                if spec.fail_on_error_status && status >= 400 {
                    self.fail_with_origin(
                        ctx,
                        Failure::new(
                            "BackendErrorStatusCode",
                            format!("the backend answered {status}"),
                        ),
                        "forward-request",
                    );
                }
            }
            Err(f) => {
                let failure = Failure {
                    reason: f.reason.to_string(),
                    response: Some(Box::new(json_error(f.status, &f.message))),
                    message: f.message,
                };
                self.fail_with_origin(ctx, failure, "forward-request");
            }
        }
    }

    /// A `send-request` finished.
    pub fn call_done(&mut self, ctx: &mut Context, result: Result<Response, Failure>) {
        self.take_call_result(ctx, result);
        debug_check(self);
    }

    fn take_call_result(&mut self, ctx: &mut Context, result: Result<Response, Failure>) {
        let Waiting::Call {
            origin,
            ignore_error,
        } = self.waiting
        else {
            return;
        };
        let variable = self.call_variable.take();
        let variable = variable.as_deref();
        self.waiting = Waiting::Nothing;
        match result {
            Ok(resp) => {
                if let Some(v) = variable {
                    ctx.variables
                        .insert(v.to_string(), Value::Response(Arc::new(resp)));
                }
            }
            Err(_) if ignore_error => {
                if let Some(v) = variable {
                    ctx.variables.insert(v.to_string(), Value::Null);
                }
            }
            Err(failure) => {
                let (level, idx) = origin;
                if let Some(doc) = self.chain.docs[usize::from(level)].clone() {
                    // The step is returned by the next `run`.
                    self.fail_in(ctx, failure, &doc, idx);
                }
            }
        }
    }

    /// Whether a `cache-lookup` answered this request, missed, or did not run.
    pub fn cache_status(&self) -> CacheStatus {
        match (&self.lookup, self.cache_hit) {
            (_, true) => CacheStatus::Hit,
            (Some(_), false) => CacheStatus::Miss,
            (None, false) => CacheStatus::None,
        }
    }

    /// The request is dropped before its response was decided (the client went
    /// away, its body failed): the slots it holds go back as store writes.
    pub fn abandon(&mut self) {
        self.release_slots();
        debug_check(self);
    }

    fn release_slots(&mut self) {
        for (_, _, key) in self.permits.drain(..) {
            self.side.store_writes.push(StoreOp::Release { key });
        }
    }

    /// Whether the backend's response may go to the client as it is: nothing
    /// runs after the forward, nothing waits to be counted or added to it.
    pub fn response_untouched(&self) -> bool {
        matches!(self.waiting, Waiting::Forward(spec) if !spec.follow_redirects && !spec.fail_on_error_status)
            && self.deferred.is_empty()
            && self.extra_headers.is_empty()
            && self.permits.is_empty()
            && self
                .chain
                .docs
                .iter()
                .flatten()
                .all(|d| d.quiet_after_forward())
    }

    /// Ends the pipeline when the backend's response goes to the client as it
    /// is (see `response_untouched`).
    pub fn pass_response(&mut self) {
        self.waiting = Waiting::Nothing;
        self.done = true;
        self.finished = true;
        debug_check(self);
    }

    /// The key sets asked for with `Step::RefreshKeySets` were fetched (or
    /// could not be): the `validate-jwt` that asked runs again.
    pub fn key_sets_refreshed(&mut self) {
        if self.waiting == Waiting::KeySets {
            self.waiting = Waiting::Nothing;
        }
        debug_check(self);
    }

    /// The timer from `Step::Sleep` went off (the connection keeps that
    /// deadline; [`Machine::handle_timeout`] is the same with the time).
    pub fn sleep_done(&mut self) {
        if matches!(self.waiting, Waiting::Sleep(_)) {
            self.waiting = Waiting::Nothing;
        }
        debug_check(self);
    }

    /// Ends the pipeline with a 500 (e.g. the connection could not do a step).
    pub fn abort(&mut self, ctx: &mut Context, reason: &str, message: &str) {
        self.waiting = Waiting::Nothing;
        self.asked = None;
        ctx.response = Some(json_error(500, message));
        ctx.last_error = Some(LastError {
            source: "gateway".into(),
            reason: reason.into(),
            message: message.into(),
            section: self.section.name().into(),
            ..Default::default()
        });
        self.done = true;
        debug_check(self);
    }

    // ----- internals -----

    fn set_pc(&mut self, pc: u32) {
        if let Some(f) = self.frames.last_mut() {
            f.pc = pc;
        }
    }

    /// Starts running `section` from its innermost scope.
    fn enter(&mut self, section: SectionKind) {
        self.section = section;
        self.frames.clear();
        self.retries.clear();
        let level = self.parent_of(ROOT, section);
        // parent_of(ROOT) looks at every scope: the innermost that has the section.
        self.frames.push(Frame { level, pc: 0 });
    }

    /// The next scope outside `level` whose document has `section` (or the root).
    fn parent_of(&self, level: u8, section: SectionKind) -> u8 {
        let mut l = if level == ROOT { 4 } else { level };
        while l > 0 {
            l -= 1;
            if let Some(doc) = &self.chain.docs[usize::from(l)] {
                if doc.section(section).is_some() {
                    return l;
                }
            }
        }
        ROOT
    }

    /// A section ran to its end; returns a step when the pipeline must stop.
    fn section_finished(&mut self, ctx: &mut Context) -> Option<Step> {
        match self.section {
            SectionKind::Inbound if self.preflight => {
                ctx.response = Some(preflight::unanswered());
                self.done = true;
                Some(Step::Respond)
            }
            SectionKind::Inbound => {
                self.enter(SectionKind::Backend);
                None
            }
            SectionKind::Backend => {
                if ctx.response.is_none() {
                    // No forward-request ran: APIM answers 200 with no body.
                    ctx.response = Some(Response {
                        status: 200,
                        reason: "OK".into(),
                        body: Some(bytes::Bytes::new()),
                        ..Default::default()
                    });
                }
                self.enter(SectionKind::Outbound);
                None
            }
            SectionKind::Outbound | SectionKind::OnError => {
                self.done = true;
                Some(Step::Respond)
            }
        }
    }

    fn forward(&mut self, spec: ForwardSpec) -> Step {
        self.forwarded = true;
        self.waiting = Waiting::Forward(spec);
        Step::Forward(spec)
    }

    /// Asks the store for `op`; its answer resumes `asked` (`store_done`).
    fn ask(&mut self, asked: Asked, op: StoreOp, ctx: &Context, env: &Env<'_>) -> Step {
        self.asked = Some(asked);
        // The origin is filled in by `run_inner`.
        self.waiting = Waiting::Store { origin: (0, 0) };
        Step::Store(StoreRequest {
            ops: smallvec::smallvec![op],
            now: env.now,
            now_unix: now_unix(ctx),
        })
    }

    /// Runs one leaf policy: `Ok(None)` to go on, `Ok(Some(step))` to stop.
    fn act(
        &mut self,
        action: &Action,
        ctx: &mut Context,
        env: &Env<'_>,
        level: u8,
    ) -> Result<Option<Step>, Failure> {
        match action {
            Action::SetHeader(a) => a.run(ctx)?,
            Action::SetQueryParameter(a) => a.run(ctx)?,
            Action::RewriteUri(a) => a.run(ctx)?,
            Action::SetMethod(a) => a.run(ctx)?,
            Action::SetBody(a) => a.run(ctx)?,
            Action::FindAndReplace(a) => a.run(ctx)?,
            Action::JsonToXml(a) => a.run(ctx)?,
            Action::XmlToJson(a) => a.run(ctx)?,
            Action::XslTransform(a) => a.run(ctx)?,
            Action::SetVariable(a) => a.run(ctx)?,
            Action::AuthenticationBasic(a) => a.run(ctx)?,
            Action::SetStatus(a) => a.run(ctx)?,
            Action::CheckHeader(a) => a.run(ctx)?,
            Action::SetBackendService(a) => {
                let service: Arc<ServiceUrl> = match a {
                    SetBackendService::Url(u) => u.clone(),
                    SetBackendService::Expr(t) => {
                        let s = eval(t, ctx)?;
                        Arc::new(ServiceUrl::parse(s.trim()).map_err(|e| {
                            Failure::new("InvalidBackendUrl", format!("base-url '{s}': {e}"))
                        })?)
                    }
                    SetBackendService::Backend(id) => Arc::new(
                        (env.backend)(id)
                            .ok_or_else(|| {
                                Failure::new(
                                    "BackendNotFound",
                                    format!("backend '{id}' is not defined"),
                                )
                            })?
                            .clone(),
                    ),
                };
                retarget(ctx, &service);
                ctx.backend_tls.backend = Some(match a {
                    SetBackendService::Backend(id) => env.tls.backend_tls(id),
                    _ => None,
                });
            }
            Action::AuthenticationCertificate(a) => {
                ctx.backend_tls.certificate = Some(a.identity(ctx, env.tls)?);
            }
            Action::ReturnResponse(a) => {
                a.run(ctx)?;
                self.done = true;
                return Ok(Some(Step::Respond));
            }
            Action::MockResponse(a) => {
                a.run(ctx);
                self.done = true;
                return Ok(Some(Step::Respond));
            }
            Action::Trace(t) => {
                let message = eval(&t.message, ctx)?;
                self.side.traces.push(TraceRecord {
                    source: t.source.clone(),
                    severity: t.severity.clone(),
                    message,
                    metadata: t.metadata.clone(),
                });
            }
            Action::Forward(spec) => {
                // A retry sends the request again; the last response is replaced.
                ctx.response = None;
                return Ok(Some(self.forward(*spec)));
            }
            Action::Send(s) => {
                let req = s.build(ctx, env.tls)?;
                if s.one_way {
                    self.side.one_way.push(req);
                } else {
                    self.waiting = Waiting::Call {
                        origin: (0, 0),
                        ignore_error: s.ignore_error,
                    };
                    self.call_variable = s.response_variable.clone();
                    return Ok(Some(Step::Call(req)));
                }
            }
            Action::EmitMetric(m) => self.side.metrics.push(m.sample(ctx)?),
            Action::LlmEmitTokenMetric(m) => {
                self.deferred.push(Deferred::Llm(Box::new(m.defer(ctx)?)))
            }
            Action::LlmTokenLimit(l) => {
                let resolved = l.resolve(ctx)?;
                let ops = l.store_ops(&resolved);
                self.asked = Some(Asked::LlmTokens(l.clone(), resolved));
                self.waiting = Waiting::Store { origin: (0, 0) };
                return Ok(Some(Step::Store(StoreRequest {
                    ops: StoreOps::from_vec(ops),
                    now: env.now,
                    now_unix: now_unix(ctx),
                })));
            }
            Action::WaitCalls(w) => return self.wait_calls(w, ctx, env).map(Some),
            Action::IpFilter(f) => f.check(&ctx.request.ip_address, ctx)?,
            Action::ValidateClientCertificate(v) => v.check(ctx)?,
            Action::Validate(v) => v.run(ctx)?,
            Action::Cors(c) => {
                if self.preflight {
                    match c.preflight(ctx)? {
                        PreflightOutcome::Allowed(resp) => {
                            ctx.response = Some(resp);
                            self.done = true;
                            return Ok(Some(Step::Respond));
                        }
                        PreflightOutcome::Unmatched {
                            terminate: true,
                            response,
                        } => {
                            ctx.response = Some(response);
                            self.done = true;
                            return Ok(Some(Step::Respond));
                        }
                        PreflightOutcome::Unmatched { .. } => {}
                    }
                } else {
                    match c.actual(ctx)? {
                        CorsOutcome::Headers(h) => self.extra_headers.extend(h),
                        CorsOutcome::Terminate(resp) => {
                            ctx.response = Some(resp);
                            self.done = true;
                            return Ok(Some(Step::Respond));
                        }
                        CorsOutcome::NotCors | CorsOutcome::Unmatched => {}
                    }
                }
            }
            Action::CacheLookup(l) => {
                if let Some(key) = l.cache_key(ctx)? {
                    self.lookup = Some((l.clone(), key.clone()));
                    let op = StoreOp::CacheGet {
                        key,
                        caching: l.caching_type,
                    };
                    return Ok(Some(self.ask(Asked::CacheResponse, op, ctx, env)));
                }
            }
            Action::CacheStore(s) => {
                if let (Some((lookup, key)), false, Some(resp)) =
                    (&self.lookup, self.cache_hit, ctx.response.as_ref())
                {
                    if let Some(ttl) = s.ttl_to_store(lookup, ctx, resp)? {
                        let stored = encode_response(resp);
                        self.side.store_writes.push(StoreOp::CachePut {
                            key: key.clone(),
                            value: stored,
                            ttl,
                            caching: lookup.caching_type,
                        });
                        if let Some(cc) = lookup.downstream_cache_control(ctx, ttl)? {
                            if let Some(r) = ctx.response.as_mut() {
                                r.headers.set("Cache-Control", cc);
                            }
                        }
                    }
                }
            }
            Action::CacheLookupValue(v) => {
                let key = v.store_key(ctx)?;
                self.value_lookup = Some((v.variable_name.clone(), v.default_value.clone()));
                let op = StoreOp::CacheGet {
                    key,
                    caching: v.caching_type,
                };
                return Ok(Some(self.ask(Asked::CacheValue, op, ctx, env)));
            }
            Action::CacheStoreValue(v) => {
                let (key, value, ttl) = v.resolve(ctx)?;
                self.side.store_writes.push(StoreOp::CachePut {
                    key,
                    value,
                    ttl,
                    caching: v.caching_type,
                });
            }
            Action::CacheRemoveValue(v) => {
                let key = v.store_key(ctx)?;
                self.side.store_writes.push(StoreOp::CacheRemove {
                    key,
                    caching: v.caching_type,
                });
            }
            Action::RateLimit(r) => {
                let scope = scope_key(level, ctx);
                let sub = subscription_id(ctx);
                let counters = r.counters(&scope, &sub, &ctx.fixed.api, &ctx.fixed.operation);
                let op = StoreOp::Rate {
                    counters,
                    add: Some(1),
                };
                return Ok(Some(self.ask(Asked::Rate(r.clone()), op, ctx, env)));
            }
            Action::RateLimitByKey(r) => {
                let resolved = r.resolve(ctx)?;
                let op = StoreOp::Rate {
                    counters: vec![resolved.counter()],
                    add: r.inbound_add(&resolved),
                };
                let asked = Asked::RateByKey(r.clone(), resolved);
                return Ok(Some(self.ask(asked, op, ctx, env)));
            }
            Action::Quota(q) => {
                let scope = scope_key(level, ctx);
                let sub = subscription_id(ctx);
                let counters = q.counters(&scope, &sub, None, &ctx.fixed.api, &ctx.fixed.operation);
                let op = StoreOp::Quota {
                    counters: counters.clone(),
                    add: Some(1),
                };
                return Ok(Some(self.ask(
                    Asked::Quota(q.clone(), counters),
                    op,
                    ctx,
                    env,
                )));
            }
            Action::QuotaByKey(q) => {
                let mut resolved = q.resolve(ctx)?;
                let (counter, add) =
                    quota_once::counted_once(&mut self.quota_keys, q, &mut resolved);
                let op = StoreOp::Quota {
                    counters: vec![counter],
                    add,
                };
                let asked = Asked::QuotaByKey(q.clone(), resolved);
                return Ok(Some(self.ask(asked, op, ctx, env)));
            }
            Action::ValidateJwt(v) => {
                // OpenID keys come from the store, asked for anew each time the
                // policy runs (again after a refetch).
                let fetched;
                let inline_only = KeySetsSnapshot::default();
                let keys = if v.openid_urls().is_empty() {
                    &inline_only
                } else {
                    match self.key_sets.take() {
                        Some(keys) => {
                            fetched = keys;
                            &*fetched
                        }
                        None => {
                            let step = self.ask(Asked::KeySets, StoreOp::KeySets, ctx, env);
                            return Ok(Some(step));
                        }
                    }
                };
                let jwt = match v.validate(ctx, keys, now_unix(ctx)) {
                    Ok(jwt) => jwt,
                    Err(failure) if !self.keys_refreshed && v.wants_key_refresh(&failure) => {
                        // The driver's store throttles the refetch per URL.
                        self.keys_refreshed = true;
                        self.waiting = Waiting::KeySets;
                        return Ok(Some(Step::RefreshKeySets(v.openid_urls().to_vec())));
                    }
                    Err(failure) => return Err(failure),
                };
                if let Some(name) = &v.output_token_variable_name {
                    ctx.variables.insert(name.clone(), jwt.into_value());
                }
            }
            Action::LimitConcurrency(spec, slot) => {
                let key = spec.resolve_key(ctx)?;
                let op = StoreOp::Acquire {
                    key: key.clone(),
                    max: spec.max_count,
                };
                let asked = Asked::Slot {
                    level,
                    slot: *slot,
                    key,
                };
                return Ok(Some(self.ask(asked, op, ctx, env)));
            }
        }
        Ok(None)
    }

    /// The response body was streamed to the client: `bytes` of request and
    /// response body went through, which bandwidth quotas now count (as
    /// store writes).
    pub fn streamed(&mut self, bytes: u64) {
        for d in std::mem::take(&mut self.after_stream) {
            match d {
                Deferred::QuotaBytes(counters) => self.side.store_writes.push(StoreOp::QuotaAdd {
                    counters,
                    calls: 0,
                    bytes,
                }),
                Deferred::QuotaByKey(_, resolved) => {
                    self.side.store_writes.push(StoreOp::QuotaAdd {
                        counters: vec![resolved.counter()],
                        calls: 0,
                        bytes,
                    })
                }
                Deferred::Rate(..) | Deferred::Llm(_) => {}
            }
        }
    }

    /// Sets the variables and remembers the headers a rate limit reports.
    fn rate_outputs(
        &mut self,
        outputs: &RateLimitOutputs,
        outcome: &RateOutcome,
        ctx: &mut Context,
    ) {
        for (name, value) in outputs.variables(outcome) {
            ctx.variables.insert(name, value);
        }
        self.extra_headers.extend(outputs.response_headers(outcome));
    }

    /// Work after the response is decided: rate-limit headers on it, deferred
    /// counting and concurrency slots given back (as store writes).
    fn finish(&mut self, ctx: &mut Context) {
        if let Some(resp) = ctx.response.as_mut() {
            for (n, v) in self.extra_headers.drain(..) {
                resp.headers.set(&n, v);
            }
        }
        self.release_slots();
        let bytes = ctx.request.body.as_ref().map_or(0, |b| b.len() as u64)
            + ctx
                .response
                .as_ref()
                .and_then(|r| {
                    r.body.as_ref().map(|b| b.len() as u64).or_else(|| {
                        r.headers
                            .get("content-length")
                            .and_then(|v| v.trim().parse().ok())
                    })
                })
                .unwrap_or(0);
        // A body still to be streamed is counted when it has been (`streamed`).
        let streaming = ctx.response.as_ref().is_some_and(|r| r.body.is_none());
        for d in std::mem::take(&mut self.deferred) {
            match d {
                Deferred::Rate(r, resolved) => {
                    if r.should_increment(ctx).unwrap_or(false) {
                        self.side.store_writes.push(StoreOp::RateAdd {
                            counters: vec![resolved.counter()],
                            calls: resolved.count,
                        });
                    }
                }
                Deferred::QuotaBytes(_) if streaming => self.after_stream.push(d),
                Deferred::QuotaBytes(counters) => self.side.store_writes.push(StoreOp::QuotaAdd {
                    counters,
                    calls: 0,
                    bytes,
                }),
                Deferred::QuotaByKey(q, resolved) => {
                    let calls = if q.defers_increment() && q.should_increment(ctx).unwrap_or(false)
                    {
                        resolved.count
                    } else {
                        0
                    };
                    let bytes = if streaming { 0 } else { bytes };
                    if calls > 0 || bytes > 0 {
                        self.side.store_writes.push(StoreOp::QuotaAdd {
                            counters: vec![resolved.counter()],
                            calls,
                            bytes,
                        });
                    }
                    if streaming {
                        self.after_stream.push(Deferred::QuotaByKey(q, resolved));
                    }
                }
                Deferred::Llm(d) => {
                    d.on_response(ctx, &mut self.side.store_writes, &mut self.side.metrics)
                }
            }
        }
    }

    /// Records the failure and moves to `on-error`; returns a step if the
    /// pipeline must stop now.
    fn fail(
        &mut self,
        ctx: &mut Context,
        failure: Failure,
        doc: &Document,
        origin: u32,
    ) -> Option<Step> {
        self.fail_in(ctx, failure, doc, origin);
        self.done.then_some(Step::Respond)
    }

    fn fail_in(&mut self, ctx: &mut Context, failure: Failure, doc: &Document, origin: u32) {
        let o = doc.origins.get(origin as usize).cloned().unwrap_or(Origin {
            policy: String::new(),
            path: String::new(),
            pos: Default::default(),
            id: String::new(),
        });
        self.record_failure(ctx, failure, &o.policy, doc.level.name(), &o.path, &o.id);
    }

    fn fail_with_origin(&mut self, ctx: &mut Context, failure: Failure, source: &str) {
        self.record_failure(ctx, failure, source, "", "", "");
    }

    fn record_failure(
        &mut self,
        ctx: &mut Context,
        failure: Failure,
        source: &str,
        scope: &str,
        path: &str,
        id: &str,
    ) {
        ctx.last_error = Some(LastError {
            source: source.to_string(),
            reason: failure.reason.clone(),
            message: failure.message.clone(),
            scope: scope.to_string(),
            section: self.section.name().to_string(),
            path: path.to_string(),
            policy_id: id.to_string(),
        });
        ctx.response = Some(
            failure
                .response
                .map_or_else(|| json_error(500, "Internal server error"), |r| *r),
        );
        if self.section == SectionKind::OnError {
            // A failure while handling a failure: answer with what there is.
            self.done = true;
        } else {
            self.enter(SectionKind::OnError);
        }
    }

    fn fail_internal(&mut self, ctx: &mut Context, message: &str) -> Step {
        self.abort(ctx, "InternalError", message);
        Step::Respond
    }
}

/// Most redirects one `forward-request` follows.
const MAX_REDIRECTS: u8 = 10;

/// Where a redirect response points, if it is one with a usable `Location`.
fn redirect_target(ctx: &Context, status: u16) -> Option<Url> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = ctx.response.as_ref()?.headers.get("location")?.trim();
    let current = &ctx.request.url;
    if let Some(rest) = location.strip_prefix("//") {
        return parse_absolute(&format!("{}://{rest}", current.scheme));
    }
    if location.starts_with('/') {
        let (path, query) = match location.split_once('?') {
            Some((p, q)) => (p, parse_query(q)),
            None => (location, Vec::new()),
        };
        return Some(Url {
            path: path.to_string(),
            query,
            ..current.clone()
        });
    }
    parse_absolute(location)
}

/// `http(s)://host[:port][/path][?query]` as a `Url`, parsed as calls out
/// parse their URLs.
fn parse_absolute(s: &str) -> Option<Url> {
    let target = CalloutTarget::parse(s).ok()?;
    let (path, query) = match target.path_and_query.split_once('?') {
        Some((p, q)) => (p, parse_query(q)),
        None => (target.path_and_query.as_str(), Vec::new()),
    };
    Some(Url {
        scheme: target.scheme().as_str().to_string(),
        host: target.host().to_string(),
        port: target.port(),
        path: path.to_string(),
        query,
    })
}

/// Counting that happens once the response is known.
#[derive(Debug)]
enum Deferred {
    /// `rate-limit-by-key` with an `increment-condition` or computed count.
    Rate(Arc<RateLimitByKey>, ResolvedRateKey),
    /// `quota` bandwidth.
    QuotaBytes(Vec<QuotaCounter>),
    /// `quota-by-key`: conditional calls and bandwidth.
    QuotaByKey(Arc<QuotaByKey>, ResolvedQuotaKey),
    /// `llm-token-limit`, `llm-emit-token-metric`: tokens from the response.
    Llm(Box<super::llm::LlmDeferred>),
}

/// Which policy document a counter belongs to, so the same subscription under
/// two documents keeps two counters.
fn scope_key(level: u8, ctx: &Context) -> String {
    let f = &ctx.fixed;
    match level {
        0 => "global".to_string(),
        1 => format!(
            "product:{}",
            f.product.as_ref().map_or("", |p| p.id.as_str())
        ),
        2 => format!("api:{}", f.api.id),
        _ => format!("operation:{}:{}", f.api.id, f.operation.id),
    }
}

/// The subscription a `rate-limit`/`quota` counts for; requests without one
/// (open APIs) share one counter, keyed by the empty id.
fn subscription_id(ctx: &Context) -> String {
    ctx.fixed
        .subscription
        .as_ref()
        .map_or_else(String::new, |s| s.id.clone())
}

/// Unix seconds from the context's clock input.
fn now_unix(ctx: &Context) -> i64 {
    ctx.now_unix_ms.div_euclid(1000)
}

/// C#-like truth of a condition's value (only `true` is true).
fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}
