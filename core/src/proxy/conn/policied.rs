//! Requests with policies: the context built from the request head, the
//! pipeline driven through its steps, and the response written from what the
//! policies made (or streamed from the backend when no policy needs its body).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{
    client_framing, client_framing_parts, is_idempotent, request_framing, DeadlineKind, Event,
    Exchange, Forward, KeyStrip, Phase, ProxyConn, Response, Upstream, UpstreamTarget,
    MAX_POLICY_BODY,
};
use crate::config::{CompiledConfig, ServiceUrl};
use crate::http::body::{BodyDecoder, BodyEvent};
use crate::http::hop::{
    is_hop_by_hop, write_downstream_fields, write_downstream_response, write_upstream_fields,
    Forwarding, OutFraming,
};
use crate::http::percent::parse_query_into;
use crate::http::{BodyFraming, RequestHead, ResponseHead, Version};
use crate::machine::Machine;
use crate::policy::context::{self, Context, Static};
use crate::policy::error::Failure;
use crate::policy::pipeline::{Env, ForwardFailure, Pipeline, PipelineOutput, Step};
use crate::policy::program::Needs;
use crate::policy::store::{StoreAnswer, StoreRequest};
use crate::proxy::settings::{IdSeq, PolicyEnv};

/// Who the request is, as far as subscriptions go.
#[derive(Debug, Default)]
pub(super) struct Access {
    /// Index of the subscription whose key the request carried, and whether
    /// it was the secondary key.
    pub(super) subscription: Option<(usize, bool)>,
    /// Index of the product (the subscription's, or an open product).
    pub(super) product: Option<usize>,
    /// How to keep the key from the backend.
    pub(super) strip: KeyStrip,
    /// A CORS preflight: only `cors` policies run.
    pub(super) preflight: bool,
}

/// Where a request with policies stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Reading the request body in full before the pipeline starts.
    CollectRequest,
    /// The pipeline can run.
    Running,
    /// The backend call is in progress.
    Forwarding,
    /// Waiting for `handle_call_done` (or `handle_key_sets_refreshed`).
    AwaitCall,
    /// Waiting for `handle_store_done`.
    AwaitStore,
    /// Waiting for the `PolicySleep` deadline.
    AwaitSleep,
}

/// The policy state of one request.
#[derive(Debug)]
pub(super) struct PolicyRun {
    pipeline: Pipeline,
    ctx: Context,
    pub(super) stage: Stage,
    needs: Needs,
    started: Instant,
    req_buf: BytesMut,
    /// The client's request had a body.
    had_body: bool,
    /// Body bytes streamed through (request and response), for bandwidth quotas.
    streamed: u64,
    /// The upstream query string being written (kept for the next request).
    query_buf: String,
    /// The last request's `context.Response`, kept so the next one reuses its
    /// buffers.
    spare_response: Option<context::Response>,
}

impl PolicyRun {
    /// The request is dropped before its response was decided: what it holds
    /// in the store (concurrency slots) goes back, as a one-way store request
    /// at the time the pipeline last ran.
    pub(super) fn abandon(&mut self) -> Option<Event> {
        self.pipeline.abandon();
        let now = self.started + self.ctx.elapsed;
        let now_unix = self.ctx.now_unix_ms.div_euclid(1000);
        let request: StoreRequest = self.pipeline.side.take_store_writes(now, now_unix)?;
        Some(Event::Store {
            request,
            one_way: true,
        })
    }

    /// The template parameters of the request it ran, for the next request to
    /// refill.
    pub(super) fn take_params(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.ctx.request.matched_parameters)
    }

    /// Hands what the policies knew about the request to its tally.
    pub(super) fn note_outcome(&mut self, tally: &mut super::Tally, want_id: bool) {
        tally.policy_outcome(
            &mut self.ctx.request_id,
            self.pipeline.cache_status(),
            self.ctx.last_error.as_ref(),
            want_id,
        );
    }
}

impl Exchange {
    /// Whether the client's request body is being read for policies.
    pub(super) fn collecting_request(&self) -> bool {
        matches!(&self.policy, Some(run) if run.stage == Stage::CollectRequest)
    }
}

impl PolicyRun {
    /// `n` body bytes went through without being buffered.
    pub(super) fn count_streamed(&mut self, n: usize) {
        self.streamed = self.streamed.saturating_add(n as u64);
    }

    /// Appends the buffered request body, if the request has one.
    pub(super) fn append_body(&self, out: &mut BytesMut) {
        if let Some(body) = &self.ctx.request.body {
            out.extend_from_slice(body);
        }
    }

    /// Appends the head of the request to send upstream, from the context.
    pub(super) fn write_upstream(
        &mut self,
        fwd: &Forward,
        head: &RequestHead,
        client_ip: &str,
        proto: &str,
        out: &mut BytesMut,
    ) {
        let mut query = std::mem::take(&mut self.query_buf);
        query.clear();
        let req = &self.ctx.request;
        req.url.write_query_string(&mut query);
        let api = fwd.target.config.api(fwd.target.api);
        let service = fwd.target.service();
        let host: &[u8] = if fwd.target.custom.is_some() || !api.preserve_host_header {
            service.authority.as_bytes()
        } else {
            req.headers
                .get("host")
                .map(str::as_bytes)
                .or(head.authority())
                .unwrap_or(b"")
        };
        let forwarding = Forwarding {
            client_ip: client_ip.as_bytes(),
            proto: proto.as_bytes(),
            host_override: Some(host),
            traceparent: fwd.traceparent.as_ref().map(|t| &t[..]),
            upgrade: fwd.upgrade.then_some(&b"websocket"[..]),
        };
        let path: &[u8] = if req.url.path.is_empty() {
            b"/"
        } else {
            req.url.path.as_bytes()
        };
        let fields = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        write_upstream_fields(
            fields,
            head.authority(),
            req.method.as_bytes(),
            &[path, query.as_bytes()],
            fwd.framing,
            &forwarding,
            256,
            out,
        );
        self.query_buf = query;
    }
}

impl ProxyConn {
    /// Starts a request whose operation has policies.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_policy_request(
        &mut self,
        head: RequestHead,
        config: Arc<CompiledConfig>,
        (api_idx, upgrade): (usize, bool),
        op_idx: usize,
        prefix: usize,
        params: Vec<(String, String)>,
        access: Access,
        now: Instant,
    ) -> bool {
        let chain = config.chain(api_idx, op_idx, access.product);
        let needs = chain.needs();
        let has_body = head.framing != BodyFraming::Empty;
        let req_body = has_body.then(|| {
            BodyDecoder::new(
                head.framing,
                self.settings.limits.max_body_bytes,
                self.settings.limits.max_trailer_bytes,
            )
        });
        let collect = needs.request_body && has_body;
        let pipeline = if access.preflight {
            Pipeline::preflight(chain)
        } else {
            Pipeline::new(chain)
        };
        let stage = if collect {
            Stage::CollectRequest
        } else {
            Stage::Running
        };
        // The connection's last run is reused: its context's buffers are
        // refilled instead of allocated again.
        let mut run = match self.spare_run.take() {
            Some(mut run) => {
                run.pipeline = pipeline;
                run.stage = stage;
                run.needs = needs;
                run.started = now;
                run.req_buf = BytesMut::new();
                run.had_body = has_body;
                run.streamed = 0;
                if let Some(resp) = run.ctx.response.take() {
                    run.spare_response = Some(resp);
                }
                run
            }
            None => Box::new(PolicyRun {
                pipeline,
                ctx: Context::default(),
                stage,
                needs,
                started: now,
                req_buf: BytesMut::new(),
                had_body: has_body,
                streamed: 0,
                query_buf: String::new(),
                spare_response: None,
            }),
        };
        fill_context(
            &mut run.ctx,
            &head,
            &config,
            (api_idx, op_idx, prefix),
            params,
            &access,
            &self.client_ip,
            self.settings.proto,
            (&self.settings.policy, &mut self.ids),
        );
        run.ctx.request.certificate = self.client_cert.clone();
        let api = config.api(api_idx);
        let response_timeout = api.timeout();
        let forward = Forward {
            target: UpstreamTarget {
                config: config.clone(),
                api: api_idx,
                custom: None,
                custom_tls: None,
                tunnel: upgrade,
            },
            api_prefix_len: prefix,
            framing: request_framing(&head),
            strip: access.strip,
            traceparent: self.tally.traceparent(),
            upgrade,
        };
        let mut expect_continue = head.expect_continue && has_body;
        if collect && expect_continue {
            // The gateway reads the body itself, so it asks for it now.
            expect_continue = false;
            self.client_out
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.upstream_out.clear();
        self.exchange = Some(Exchange {
            forward,
            method: head.method.clone(),
            client_version: head.version,
            retry_allowed: !has_body && is_idempotent(&head.method),
            close: !head.keep_alive || self.draining,
            head,
            upstream: Upstream::Released,
            upstream_eof: false,
            upstream_keep_alive: false,
            req_body,
            expect_continue,
            response: Response::AwaitingHead,
            response_timeout,
            policy: Some(run),
        });
        self.phase = Phase::Exchange;
        if collect {
            self.set_deadline(
                now,
                self.settings.timeouts.body_idle,
                DeadlineKind::BodyIdle,
            );
        } else {
            self.deadline = None;
        }
        true
    }

    /// Reads the request body into the context; the pipeline starts when it is in.
    pub(super) fn collect_request(&mut self, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        let Some(decoder) = ex.req_body.as_mut() else {
            run.stage = Stage::Running;
            return true;
        };
        loop {
            match decoder.decode(&mut self.client_in) {
                Ok(Some(BodyEvent::Data(data))) => {
                    if run.req_buf.len() + data.len() > MAX_POLICY_BODY {
                        // The pipeline has not run yet: it holds nothing.
                        ex.policy = None;
                        return self.fail_exchange(413, now);
                    }
                    run.req_buf.extend_from_slice(&data);
                }
                Ok(Some(BodyEvent::End { .. })) => {
                    run.ctx.request.body = Some(std::mem::take(&mut run.req_buf).freeze());
                    run.stage = Stage::Running;
                    ex.req_body = None;
                    self.at_boundary = true;
                    self.deadline = None;
                    return true;
                }
                Ok(None) => {
                    if self.client_eof {
                        self.close(now);
                        return true;
                    }
                    return false;
                }
                Err(err) => {
                    // The pipeline has not run yet: it holds nothing.
                    ex.policy = None;
                    return self.fail_exchange(err.status(), now);
                }
            }
        }
    }

    /// Runs the pipeline to its next step and starts that step.
    pub(super) fn drive_pipeline(&mut self, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        run.ctx.elapsed = now.saturating_duration_since(run.started);
        run.ctx.now_unix_ms = self.settings.policy.unix_ms(now);
        let config = ex.forward.target.config.clone();
        let backend = |id: &str| config.backend_url(id);
        let env = Env {
            now,
            backend: &backend,
            tls: config.tls_lookup(),
        };
        let step = run.pipeline.run(&mut run.ctx, &env);
        while let Some(output) = run.pipeline.poll_output() {
            self.events.push_back(match output {
                PipelineOutput::Metric(m) => {
                    // Kept by the sink like the request's own counts: no IO.
                    self.settings.telemetry.emit_metric(&m);
                    continue;
                }
                PipelineOutput::Trace(t) => Event::Trace(t),
                PipelineOutput::OneWay(request) => Event::Call {
                    request,
                    one_way: true,
                },
            });
        }
        let now_unix = run.ctx.now_unix_ms.div_euclid(1000);
        if let Some(request) = run.pipeline.side.take_store_writes(now, now_unix) {
            self.events.push_back(Event::Store {
                request,
                one_way: true,
            });
        }
        match step {
            Step::Forward(spec) => self.start_forward(spec.timeout, now),
            Step::Call(request) => {
                run.stage = Stage::AwaitCall;
                // The adapter enforces the call's own timeout.
                self.deadline = None;
                self.events.push_back(Event::Call {
                    request,
                    one_way: false,
                });
                false
            }
            Step::CallAll { requests, any } => {
                run.stage = Stage::AwaitCall;
                // The adapter enforces each call's own timeout.
                self.deadline = None;
                self.events.push_back(Event::CallAll { requests, any });
                false
            }
            Step::Store(request) => {
                run.stage = Stage::AwaitStore;
                // The store answers (or says it cannot) within its own timeout.
                self.deadline = None;
                self.events.push_back(Event::Store {
                    request,
                    one_way: false,
                });
                false
            }
            Step::RefreshKeySets(urls) => {
                run.stage = Stage::AwaitCall;
                // The fetch has a timeout of its own.
                self.deadline = None;
                self.events.push_back(Event::RefreshKeySets { urls });
                false
            }
            Step::Sleep(at) => {
                run.stage = Stage::AwaitSleep;
                self.deadline = Some((at, DeadlineKind::PolicySleep));
                false
            }
            Step::Respond => self.policy_respond(now),
        }
    }

    /// Sends the request, as the context now describes it, to its backend.
    fn start_forward(&mut self, timeout: Option<Duration>, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        if ex.upstream != Upstream::Released {
            // A retry: the previous attempt's connection is done with.
            let reuse = matches!(ex.response, Response::Done)
                && ex.upstream_keep_alive
                && !ex.upstream_eof
                && self.upstream_out.is_empty();
            self.events.push_back(Event::ReleaseUpstream { reuse });
            ex.upstream = Upstream::Released;
        }
        self.upstream_in.clear();
        self.upstream_out.clear();
        ex.upstream_eof = false;
        ex.upstream_keep_alive = false;
        ex.response = Response::AwaitingHead;
        let fail = |message: String, status: u16| ForwardFailure {
            reason: "BackendConnectionFailure",
            message,
            status,
        };
        let url = &run.ctx.request.url;
        let api_service = ex.forward.target.config.upstream(ex.forward.target.api);
        let same = url.scheme == api_service.scheme.as_str()
            && url.host.eq_ignore_ascii_case(&api_service.host)
            && url.port == api_service.port;
        ex.forward.target.custom = if same {
            None
        } else {
            match ServiceUrl::parse(&format!("{}://{}:{}", url.scheme, url.host, url.port)) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    run.pipeline.forward_done(
                        &mut run.ctx,
                        Err(fail(format!("invalid backend URL: {e}"), 500)),
                    );
                    run.stage = Stage::Running;
                    return true;
                }
            }
        };
        ex.forward.target.choose_tls(&run.ctx.backend_tls);
        let api = ex.forward.target.config.api(ex.forward.target.api);
        ex.response_timeout = timeout.unwrap_or(api.timeout());
        if let Some(body) = &run.ctx.request.body {
            ex.forward.framing = if body.is_empty() && !run.had_body {
                OutFraming::None
            } else {
                OutFraming::Length(body.len() as u64)
            };
        } else if ex.req_body.is_none() && run.had_body {
            // The body was streamed to an earlier attempt and is gone.
            run.pipeline.forward_done(
                &mut run.ctx,
                Err(fail("the request body cannot be sent twice".into(), 502)),
            );
            run.stage = Stage::Running;
            return true;
        }
        run.write_upstream(
            &ex.forward,
            &ex.head,
            &self.client_ip,
            self.settings.proto,
            &mut self.upstream_out,
        );
        if let Some(body) = &run.ctx.request.body {
            self.upstream_out.extend_from_slice(body);
        }
        run.stage = Stage::Forwarding;
        ex.upstream = Upstream::Connecting;
        self.tally.backend_start(now);
        self.events.push_back(Event::ConnectUpstream {
            target: ex.forward.target.clone(),
            // A connection that may become a tunnel is never a pooled one.
            fresh: ex.forward.upgrade,
        });
        self.set_deadline(now, self.settings.timeouts.connect, DeadlineKind::Connect);
        true
    }

    /// The backend's response head arrived.
    pub(super) fn policy_response_head(&mut self, head: ResponseHead, now: Instant) -> bool {
        let max_trailer = self.upstream_limits.max_trailer_bytes;
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        ex.upstream_keep_alive = head.keep_alive;
        self.tally.status(head.status);
        if !run.needs.response_body && run.pipeline.response_untouched() {
            // No policy looks at the response: it goes out as without policies,
            // without copying it into the context.
            run.pipeline.pass_response();
            run.stage = Stage::Forwarding;
            let framing = client_framing(&head, &ex.method, ex.client_version);
            let close =
                ex.close || framing == OutFraming::Close || self.draining || ex.req_body.is_some();
            ex.close = close;
            let ka10 = !close && ex.client_version == Version::Http10;
            write_downstream_response(&head, framing, close, ka10, &mut self.client_out);
            let decoder = BodyDecoder::new(head.framing, None, max_trailer);
            ex.response = Response::Body { decoder, framing };
            self.set_deadline(
                now,
                self.settings.timeouts.body_idle,
                DeadlineKind::BodyIdle,
            );
            return true;
        }
        // The last request's response lends its buffers.
        let mut resp = run.spare_response.take().unwrap_or_default();
        resp.headers.clear();
        for (n, v) in head.header_pairs() {
            if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            resp.headers
                .append_str(&String::from_utf8_lossy(n), &String::from_utf8_lossy(v));
        }
        let declared = head
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bodiless = head.framing == BodyFraming::Empty;
        // Policies that read the body see an empty one (not null) when the
        // backend sent none, as in APIM; a HEAD response keeps its head as sent.
        let empty_body = (run.needs.response_body && bodiless && ex.method != http::Method::HEAD)
            .then(bytes::Bytes::new);
        resp.status = head.status;
        resp.reason.clear();
        resp.reason
            .push_str(&String::from_utf8_lossy(head.reason()));
        resp.body = empty_body;
        run.ctx.response = Some(resp);
        let decoder = BodyDecoder::new(head.framing, None, max_trailer);
        if run.needs.response_body && !bodiless {
            ex.response = Response::Collect {
                decoder,
                buf: BytesMut::new(),
            };
            self.set_deadline(
                now,
                self.settings.timeouts.body_idle,
                DeadlineKind::BodyIdle,
            );
            return true;
        }
        ex.response = Response::Held {
            decoder,
            head_framing: head.framing,
            declared,
        };
        run.pipeline.forward_done(&mut run.ctx, Ok(()));
        run.stage = Stage::Running;
        self.deadline = None;
        true
    }

    /// The backend's whole response body is in.
    pub(super) fn policy_response_collected(&mut self, _now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        let Response::Collect { buf, .. } = std::mem::replace(&mut ex.response, Response::Done)
        else {
            return true;
        };
        if let Some(r) = run.ctx.response.as_mut() {
            r.body = Some(buf.freeze());
        }
        self.tally.backend_end(_now);
        run.pipeline.forward_done(&mut run.ctx, Ok(()));
        run.stage = Stage::Running;
        self.deadline = None;
        true
    }

    /// Whether a backend failure goes to the pipeline (`on-error`) rather than
    /// straight to the client.
    pub(super) fn policy_can_handle_failure(&self) -> bool {
        match &self.exchange {
            Some(ex) => {
                matches!(&ex.policy, Some(run) if run.stage == Stage::Forwarding)
                    && matches!(
                        ex.response,
                        Response::AwaitingHead | Response::Collect { .. }
                    )
            }
            None => false,
        }
    }

    /// The backend call failed with `status`: 5xx go to `on-error`, anything else
    /// (a bad or stalled client body) is answered as without policies.
    pub(super) fn policy_forward_failed(&mut self, status: u16, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        if status < 500 {
            if let Some(event) = run.abandon() {
                self.events.push_back(event);
            }
            ex.policy = None;
            return self.fail_exchange(status, now);
        }
        self.tally.backend_end(now);
        if ex.upstream != Upstream::Released {
            self.events
                .push_back(Event::ReleaseUpstream { reuse: false });
        }
        ex.upstream = Upstream::Released;
        self.upstream_in.clear();
        self.upstream_out.clear();
        ex.response = Response::AwaitingHead;
        let (reason, message) = match status {
            504 => ("Timeout", "The backend did not answer in time."),
            _ => (
                "BackendConnectionFailure",
                "The backend could not be reached or its response was invalid.",
            ),
        };
        run.pipeline.forward_done(
            &mut run.ctx,
            Err(ForwardFailure {
                reason,
                message: message.into(),
                status,
            }),
        );
        run.stage = Stage::Running;
        self.deadline = None;
        true
    }

    /// The `PolicySleep` deadline passed.
    pub(super) fn policy_sleep_done(&mut self, now: Instant) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            if run.stage == Stage::AwaitSleep {
                run.pipeline.sleep_done();
                run.stage = Stage::Running;
            }
        }
        self.progress(now);
    }

    /// A `send-request` call finished: its response, or why it failed.
    pub fn handle_call_done(&mut self, result: Result<context::Response, Failure>, now: Instant) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            if run.stage == Stage::AwaitCall {
                run.pipeline.call_done(&mut run.ctx, result);
                run.stage = Stage::Running;
            }
        }
        self.progress(now);
    }

    /// The calls of an `Event::CallAll` finished: one result per call, in
    /// order, `None` for one cancelled because another finished first.
    pub fn handle_calls_done(
        &mut self,
        results: Vec<Option<Result<context::Response, Failure>>>,
        now: Instant,
    ) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            if run.stage == Stage::AwaitCall {
                run.pipeline.calls_done(&mut run.ctx, results);
                run.stage = Stage::Running;
            }
        }
        self.progress(now);
    }

    /// The store answered the request of an `Event::Store` that is not one-way.
    pub fn handle_store_done(&mut self, answer: StoreAnswer, now: Instant) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            if run.stage == Stage::AwaitStore {
                run.pipeline.store_done(&mut run.ctx, answer);
                run.stage = Stage::Running;
            }
        }
        self.progress(now);
    }

    /// The key set fetch asked for with `Event::RefreshKeySets` finished.
    pub fn handle_key_sets_refreshed(&mut self, now: Instant) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            if run.stage == Stage::AwaitCall {
                run.pipeline.key_sets_refreshed();
                run.stage = Stage::Running;
            }
        }
        self.progress(now);
    }

    /// The exchange is complete: bandwidth quotas count what was streamed.
    pub(super) fn policy_exchange_done(&mut self, now: Instant) {
        let unix_ms = self.settings.policy.unix_ms(now);
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            let buffered = run.ctx.request.body.as_ref().map_or(0, |b| b.len() as u64);
            run.pipeline.streamed(run.streamed.saturating_add(buffered));
            // Nothing is held past the response (a passed-through response
            // never held anything); this only makes sure.
            run.pipeline.abandon();
            let writes = run
                .pipeline
                .side
                .take_store_writes(now, unix_ms.div_euclid(1000));
            if let Some(request) = writes {
                self.events.push_back(Event::Store {
                    request,
                    one_way: true,
                });
            }
        }
    }

    /// The pipeline finished: answer the client with `context.Response`.
    fn policy_respond(&mut self, now: Instant) -> bool {
        let draining = self.draining;
        let client_eof = self.client_eof;
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        let Some(run) = ex.policy.as_mut() else {
            return true;
        };
        let resp = run
            .ctx
            .response
            .take()
            .unwrap_or_else(|| context::Response {
                status: 200,
                reason: "OK".into(),
                body: Some(bytes::Bytes::new()),
                ..Default::default()
            });
        let mut close = ex.close || ex.req_body.is_some() || draining || client_eof;
        self.tally.status(resp.status);
        let held = std::mem::replace(&mut ex.response, Response::Done);
        let fields = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        match (held, &resp.body) {
            (
                Response::Held {
                    decoder,
                    head_framing,
                    declared,
                },
                None,
            ) => {
                // Stream the backend's body under the head the policies shaped.
                let framing = client_framing_parts(
                    head_framing,
                    declared,
                    resp.status,
                    &ex.method,
                    ex.client_version,
                );
                if framing == OutFraming::Close {
                    close = true;
                }
                let ka10 = !close && ex.client_version == Version::Http10;
                write_downstream_fields(
                    resp.status,
                    resp.reason.as_bytes(),
                    fields,
                    framing,
                    close,
                    ka10,
                    &mut self.client_out,
                );
                ex.close = close;
                ex.response = Response::Body { decoder, framing };
                run.stage = Stage::Forwarding;
                run.spare_response = Some(resp);
                self.set_deadline(
                    now,
                    self.settings.timeouts.body_idle,
                    DeadlineKind::BodyIdle,
                );
                true
            }
            (held, body) => {
                if matches!(held, Response::Held { head_framing, .. } if head_framing != BodyFraming::Empty)
                {
                    // The backend's body was replaced and is never read: its
                    // connection cannot be reused.
                    ex.upstream_keep_alive = false;
                }
                let body = body.clone().unwrap_or_default();
                let bodiless = resp.status < 200 || resp.status == 204 || resp.status == 304;
                let framing = if bodiless {
                    OutFraming::None
                } else {
                    OutFraming::Length(body.len() as u64)
                };
                let ka10 = !close && ex.client_version == Version::Http10;
                write_downstream_fields(
                    resp.status,
                    resp.reason.as_bytes(),
                    fields,
                    framing,
                    close,
                    ka10,
                    &mut self.client_out,
                );
                if !bodiless && ex.method != http::Method::HEAD {
                    self.client_out.extend_from_slice(&body);
                }
                ex.close = close;
                let mut resp = resp;
                resp.body = None;
                run.spare_response = Some(resp);
                self.finish_exchange(now)
            }
        }
    }
}

/// Fills `ctx` for a request routed to (api, operation, prefix length),
/// reusing the buffers of the request it held before (a connection keeps its
/// last context, so a keep-alive request copies its head without allocating).
#[allow(clippy::too_many_arguments)]
fn fill_context(
    ctx: &mut Context,
    head: &RequestHead,
    config: &CompiledConfig,
    (api_idx, op_idx, prefix): (usize, usize, usize),
    params: Vec<(String, String)>,
    access: &Access,
    client_ip: &str,
    proto: &str,
    (env, ids): (&PolicyEnv, &mut IdSeq),
) {
    let api = config.api(api_idx);
    let service = config.upstream(api_idx);
    let names = &api.subscription_key_parameter_names;
    let path = head.path();
    let rest = &path[prefix.min(path.len())..];
    let rest = String::from_utf8_lossy(if rest.is_empty() && service.base_path.is_empty() {
        b"/"
    } else {
        rest
    });
    let req = &mut ctx.request;
    match head.query() {
        Some(q) => parse_query_into(&String::from_utf8_lossy(q), &mut req.original_url.query),
        None => req.original_url.query.clear(),
    }
    copy_pairs(&req.original_url.query, &mut req.url.query);
    if matches!(access.strip, KeyStrip::Query(_)) {
        req.url.query.retain(|(n, _)| *n != names.query);
    }
    let authority = head
        .authority()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let default_port = if proto == "https" { 443 } else { 80 };
    let (host, port) = split_authority(&authority, default_port);
    req.headers.clear();
    for (n, v) in head.header_pairs() {
        if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        if access.strip == KeyStrip::Header && n.eq_ignore_ascii_case(names.header.as_bytes()) {
            continue;
        }
        req.headers
            .append_str(&String::from_utf8_lossy(n), &String::from_utf8_lossy(v));
    }
    set_str(&mut req.method, head.method.as_str());
    set_str(&mut req.url.scheme, service.scheme.as_str());
    set_str(&mut req.url.host, &service.host);
    req.url.port = service.port;
    set_str(&mut req.url.path, &service.base_path);
    req.url.path.push_str(&rest);
    set_str(&mut req.original_url.scheme, proto);
    set_str(&mut req.original_url.host, host);
    req.original_url.port = port;
    set_str(&mut req.original_url.path, &String::from_utf8_lossy(path));
    req.body = None;
    set_str(&mut req.ip_address, client_ip);
    set_str(&mut req.base_path, &service.base_path);
    req.matched_parameters = params;
    // Set by the caller from the connection.
    req.certificate = None;
    ctx.rng_seed = env.next_request_id_into(ids, &mut ctx.request_id);
    ctx.fixed = Static {
        api: config.api_info(api_idx).clone(),
        operation: config.operation_info(api_idx, op_idx).clone(),
        product: access.product.map(|p| config.product_info(p).clone()),
        subscription: access
            .subscription
            .map(|(i, secondary)| config.subscription_info(i, secondary).clone()),
        gateway_id: env.gateway_id.clone(),
        region: env.region.clone(),
        service_name: env.gateway_id.clone(),
        certificates: config.certificate_store().clone(),
    };
    ctx.response = None;
    ctx.variables.clear();
    ctx.last_error = None;
    ctx.elapsed = Duration::ZERO;
    ctx.now_unix_ms = 0;
    ctx.backend_tls = Default::default();
}

/// `to` := `from`, in the buffers `to` already has.
fn set_str(to: &mut String, from: &str) {
    to.clear();
    to.push_str(from);
}

/// `to` := `from`, pair by pair, in the buffers `to` already has.
fn copy_pairs(from: &[(String, String)], to: &mut Vec<(String, String)>) {
    to.truncate(from.len());
    for (i, (n, v)) in from.iter().enumerate() {
        match to.get_mut(i) {
            Some((tn, tv)) => {
                set_str(tn, n);
                set_str(tv, v);
            }
            None => to.push((n.clone(), v.clone())),
        }
    }
}

/// `host[:port]` (or `[v6]:port`) split into host and port.
fn split_authority(a: &str, default_port: u16) -> (&str, u16) {
    if let Some(rest) = a.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            let port = p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(default_port);
            return (h, port);
        }
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().unwrap_or(default_port))
        }
        _ => (a, default_port),
    }
}
