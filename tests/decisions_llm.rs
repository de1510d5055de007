//! `llm-token-limit`, `llm-emit-token-metric` and `emit-metric`, decided in
//! memory (`common::memory`) in front of a scripted OpenAI-compatible
//! backend that reports `usage` (in its JSON body, or in the last event of a
//! stream). The policies are the second corpus's documents
//! (`core/tests/apim-corpus-2/`); custom metrics are read from the gateway's
//! telemetry hub, as `/metrics` shows them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{cfg, papi};
use common::{response, Reply, Response};
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN_LIMIT: &str = include_str!("../core/tests/apim-corpus-2/llm-token-limit.xml");
const TOKEN_METRIC: &str = include_str!("../core/tests/apim-corpus-2/llm-emit-token-metric.xml");
const EMIT_METRIC: &str = include_str!("../core/tests/apim-corpus-2/emit-metric.xml");

/// A chat completion: 10 prompt and 30 completion tokens; `/stream` answers
/// as a stream whose last event reports 7 and 5.
fn openai() -> MemBackend {
    MemBackend::start(|r| {
        if r.target().ends_with("/stream") {
            let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                       data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12}}\n\n\
                       data: [DONE]\n\n";
            return Reply::Send(response(
                200,
                &[("Content-Type", "text/event-stream")],
                sse.as_bytes(),
            ));
        }
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hi!" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40 }
        });
        Reply::Send(response(
            200,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        ))
    })
}

/// A short chat prompt (estimated at 8 tokens: 3 for the message, 2 for its
/// text, 3 for the reply).
const PROMPT: &[u8] = br#"{"model":"m","messages":[{"role":"user","content":"Say hi"}]}"#;

fn chat(gw: &MemGateway, key: &str, body: &[u8]) -> Response {
    call(
        gw,
        "POST",
        "/chat/completions",
        &[("api-key", key), ("Content-Type", "application/json")],
        body,
    )
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.header(name)
}

/// Tokens per minute from `usage` (the estimate counted before forwarding),
/// then the daily quota: 429 with `Retry-After` over the minute's tokens
/// without reaching the backend, 403 over the quota, each key on its own.
#[test]
fn llm_token_limit_counts_usage_per_minute_and_per_day() {
    let backend = openai();
    let gw = MemGateway::start(&cfg(vec![papi("chat", "chat", backend.addr, TOKEN_LIMIT)]));

    // 100 a minute, 150 a day; each call uses 40 (8 estimated at admission).
    for (n, minute_left, day_left) in [(1, "60", "110"), (2, "20", "70"), (3, "0", "30")] {
        let r = chat(&gw, "team-a", PROMPT);
        assert_eq!(r.status, 200, "call {n}: {r:?} {}", r.body_str());
        assert_eq!(
            header(&r, "x-tokens-consumed").as_deref(),
            Some("40"),
            "call {n}"
        );
        assert_eq!(
            header(&r, "x-ratelimit-remaining-tokens").as_deref(),
            Some(minute_left),
            "call {n}"
        );
        assert_eq!(
            header(&r, "x-quota-remaining-tokens").as_deref(),
            Some(day_left),
            "call {n}"
        );
    }
    let r = chat(&gw, "team-a", PROMPT);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(header(&r, "x-error").as_deref(), Some("TokenLimitExceeded"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["statusCode"], 429);
    assert_eq!(
        body["message"],
        format!("Token limit is exceeded. Try again in {retry} seconds.")
    );
    assert_eq!(
        backend.requests().len(),
        3,
        "the refused call did not go on"
    );

    // Another key has its own counters.
    assert_eq!(chat(&gw, "team-b", PROMPT).status, 200);

    // A minute later the window has room again, but only 30 tokens are left
    // today: this call is admitted (a token is left), the next refused.
    gw.advance(Duration::from_secs(121));
    let r = chat(&gw, "team-a", PROMPT);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "x-quota-remaining-tokens").as_deref(), Some("0"));
    let r = chat(&gw, "team-a", PROMPT);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(header(&r, "x-error").as_deref(), Some("TokenQuotaExceeded"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["statusCode"], 403);
    assert!(
        header(&r, "retry-after").is_some(),
        "the quota renews at midnight"
    );
    assert_eq!(backend.requests().len(), 5);

    // A prompt estimated over the minute's tokens never reaches the model.
    let long =
        json!({ "model": "m", "messages": [{ "role": "user", "content": "x".repeat(600) }] });
    let r = chat(&gw, "team-c", long.to_string().as_bytes());
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(backend.requests().len(), 5);
}

/// The three token metrics APIM names, per dimension set, from the JSON
/// body's `usage` and from a stream's last event.
#[test]
fn llm_emit_token_metric_reports_prompt_completion_and_total_tokens() {
    let backend = openai();
    let gw = MemGateway::start(&cfg(vec![papi("chat", "chat", backend.addr, TOKEN_METRIC)]));
    for key in ["team-a", "team-a", "team-b"] {
        assert_eq!(chat(&gw, key, PROMPT).status, 200);
    }
    let r = call(
        &gw,
        "POST",
        "/chat/stream",
        &[("api-key", "team-b")],
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}"#,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().contains("[DONE]"),
        "the stream went through whole"
    );

    let m = gw.hub().custom_metrics();
    let get = |name: &str, client: &str| {
        m.get("llm-usage", name, &[("api_id", "chat"), ("client", client)])
            .map(|s| (s.sum, s.count))
    };
    assert_eq!(get("Total Tokens", "team-a"), Some((80.0, 2)));
    assert_eq!(get("Prompt Tokens", "team-a"), Some((20.0, 2)));
    assert_eq!(get("Completion Tokens", "team-a"), Some((60.0, 2)));
    assert_eq!(get("Total Tokens", "team-b"), Some((52.0, 2)));
    assert_eq!(get("Prompt Tokens", "team-b"), Some((17.0, 2)));
    let text = gw.hub().render_metrics(Some(1));
    assert!(
        text.contains("portcullis_custom_metric_sum{namespace=\"llm-usage\",name=\"Completion Tokens\",api_id=\"chat\",client=\"team-a\"} 60\n"),
        "{text}"
    );
}

/// `emit-metric` in inbound and outbound: values and dimensions from
/// expressions and from APIM's default dimensions.
#[test]
fn emit_metric_samples_reach_the_metrics() {
    let backend = MemBackend::start(|_| {
        Reply::Send(response(
            200,
            &[("Content-Type", "text/plain")],
            b"0123456789",
        ))
    });
    let gw = MemGateway::start(&cfg(vec![papi(
        "orders",
        "orders",
        backend.addr,
        EMIT_METRIC,
    )]));
    for client in ["web", "web", "mobile"] {
        let r = get_with(&gw, "/orders/1", &[("X-Client-Name", client)]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(get_with(&gw, "/orders/1", &[]).status, 200);
    let m = gw.hub().custom_metrics();
    let requests = |client: &str| {
        m.get(
            "orders-api",
            "Requests",
            &[
                ("api_id", "orders"),
                ("operation_id", "any"),
                ("client", client),
            ],
        )
        .map(|s| (s.sum, s.count))
    };
    let text = gw.hub().render_metrics(Some(1));
    assert_eq!(requests("web"), Some((2.0, 2)), "{text}");
    assert_eq!(requests("mobile"), Some((1.0, 1)));
    assert_eq!(requests("unknown"), Some((1.0, 1)));
    let bytes = m
        .get(
            "orders-api",
            "Response characters",
            &[("api_id", "orders"), ("status", "200")],
        )
        .map(|s| (s.sum, s.count));
    assert_eq!(bytes, Some((40.0, 4)), "{text}");
    assert!(
        text.contains("# TYPE portcullis_custom_metric summary\n"),
        "{text}"
    );
}
