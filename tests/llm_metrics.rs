//! `llm-token-limit`, `llm-emit-token-metric` and `emit-metric` over real
//! sockets, on each runtime: an OpenAI-compatible backend on loopback reports
//! `usage`, the gateway counts it against the limits and shows the custom
//! metrics on its ops listener's `/metrics`. The arithmetic is tested in
//! memory (`decisions_llm`); here the whole path, with the second corpus's
//! documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::policy_docs::*;
use common::*;
use serde_json::json;

const TOKEN_LIMIT: &str = include_str!("../core/tests/apim-corpus-2/llm-token-limit.xml");
const TOKEN_METRIC: &str = include_str!("../core/tests/apim-corpus-2/llm-emit-token-metric.xml");
const EMIT_METRIC: &str = include_str!("../core/tests/apim-corpus-2/emit-metric.xml");

/// A chat completion reporting 10 prompt and 30 completion tokens.
async fn openai() -> Backend {
    Backend::start(|_| {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hi!" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40 }
        });
        Reply::Send(ok("application/json", body.to_string().as_bytes()))
    })
    .await
}

const PROMPT: &[u8] = br#"{"model":"m","messages":[{"role":"user","content":"Say hi"}]}"#;

async fn chat(gw: &TestGateway, path: &str, key: &str) -> Response {
    call(
        gw,
        "POST",
        path,
        &[("api-key", key), ("Content-Type", "application/json")],
        PROMPT,
    )
    .await
}

/// 100 tokens a minute: three calls of 40 go through (the third leaves
/// none), the fourth is refused with 429 and `Retry-After` before the model
/// is asked.
#[runtimes]
async fn llm_token_limit_refuses_over_the_minute_tokens(rt: Runtime) {
    let backend = openai().await;
    let gw = TestGateway::start(
        rt,
        &cfg(vec![papi("chat", "chat", backend.addr, TOKEN_LIMIT)]),
    )
    .await;
    for left in ["60", "20", "0"] {
        let r = chat(&gw, "/chat/completions", "team-a").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-tokens-consumed").as_deref(), Some("40"));
        assert_eq!(
            r.header("x-ratelimit-remaining-tokens").as_deref(),
            Some(left)
        );
    }
    let r = chat(&gw, "/chat/completions", "team-a").await;
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-error").as_deref(), Some("TokenLimitExceeded"));
    assert_eq!(backend.requests().len(), 3);
    assert_eq!(chat(&gw, "/chat/completions", "team-b").await.status, 200);
    gw.stop().await;
}

/// `emit-metric` and `llm-emit-token-metric` samples show on `/metrics` as
/// `portcullis_custom_metric` series labelled with their dimensions.
#[runtimes]
async fn custom_metrics_show_on_the_metrics_endpoint(rt: Runtime) {
    let llm = openai().await;
    let orders = Backend::start(|_| Reply::Send(ok("text/plain", b"0123456789"))).await;
    let gw = TestGateway::start(
        rt,
        &cfg(vec![
            papi("chat", "chat", llm.addr, TOKEN_METRIC),
            papi("orders", "orders", orders.addr, EMIT_METRIC),
        ]),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(chat(&gw, "/chat/completions", "team-a").await.status, 200);
        let r = get_with(&gw, "/orders/1", &[("X-Client-Name", "web")]).await;
        assert_eq!(r.status, 200);
    }
    let metrics = fetch(gw.ops_addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body_str();
    for line in [
        "portcullis_custom_metric_sum{namespace=\"llm-usage\",name=\"Total Tokens\",api_id=\"chat\",client=\"team-a\"} 80\n",
        "portcullis_custom_metric_count{namespace=\"llm-usage\",name=\"Prompt Tokens\",api_id=\"chat\",client=\"team-a\"} 2\n",
        "portcullis_custom_metric_sum{namespace=\"orders-api\",name=\"Requests\",api_id=\"orders\",client=\"web\",operation_id=\"any\"} 2\n",
        "portcullis_custom_metric_sum{namespace=\"orders-api\",name=\"Response characters\",api_id=\"orders\",status=\"200\"} 20\n",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    gw.stop().await;
}

/// With `--otlp-endpoint`, custom metrics also go to `{url}/v1/metrics` as
/// OTLP summaries, every `--otlp-metrics-interval`.
#[runtimes]
async fn custom_metrics_are_exported_over_otlp(rt: Runtime) {
    let orders = Backend::start(|_| Reply::Send(ok("text/plain", b"0123456789"))).await;
    let collector = Backend::start(|_| Reply::Send(ok("application/x-protobuf", b""))).await;
    let url = format!("http://{}", collector.addr);
    let gw = TestGateway::start_with(
        rt,
        &cfg(vec![papi("orders", "orders", orders.addr, EMIT_METRIC)]),
        |o| {
            o.telemetry.otlp_endpoint = Some(url);
            o.telemetry.otlp_metrics_interval = std::time::Duration::from_millis(100);
        },
    )
    .await;
    let r = get_with(&gw, "/orders/1", &[("X-Client-Name", "otlp-client")]).await;
    assert_eq!(r.status, 200);
    let export = within("custom metrics are exported", async {
        loop {
            if let Some(r) = collector
                .requests()
                .into_iter()
                .find(|r| r.target() == "/v1/metrics")
            {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(export.method(), "POST");
    assert_eq!(
        export.header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    let body = &export.body;
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    for needle in [
        &b"orders-api"[..],
        b"Requests",
        b"Response characters",
        b"client",
        b"otlp-client",
    ] {
        assert!(
            contains(needle),
            "{} in the export",
            String::from_utf8_lossy(needle)
        );
    }
    gw.stop().await;
}

/// Two gateways with `--store redis://…` count one key's tokens together:
/// the admission (minute and quota in one store request) and the usage
/// counted after each response go through Redis's rate and quota scripts.
#[runtimes]
async fn llm_token_limit_is_shared_through_redis(rt: Runtime) {
    use common::redis::RedisServer;
    use common::store::{call_at, gateways, redis_args};
    let redis = RedisServer::start();
    let backend = openai().await;
    let doc = cfg(vec![papi("chat", "chat", backend.addr, TOKEN_LIMIT)]);
    let gws = gateways(rt, &doc, 2, &redis_args(&redis, &[])).await;
    let headers = [("api-key", "team-a"), ("Content-Type", "application/json")];
    for (i, (minute, day)) in [("60", "110"), ("20", "70"), ("0", "30")]
        .into_iter()
        .enumerate()
    {
        let r = call_at(
            gws[i % 2].addr,
            "POST",
            "/chat/completions",
            &headers,
            PROMPT,
        )
        .await;
        assert_eq!(r.status, 200, "call {i}: {r:?}");
        assert_eq!(
            r.header("x-ratelimit-remaining-tokens").as_deref(),
            Some(minute),
            "call {i}"
        );
        assert_eq!(
            r.header("x-quota-remaining-tokens").as_deref(),
            Some(day),
            "call {i}"
        );
    }
    let r = call_at(gws[1].addr, "POST", "/chat/completions", &headers, PROMPT).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("retry-after").is_some());
    assert_eq!(backend.requests().len(), 3);
}
