use super::*;
use crate::policy::xml;

fn resp(content_type: &str, body: &str) -> Response {
    let mut r = Response {
        status: 200,
        body: Some(bytes::Bytes::from(body.to_string())),
        ..Default::default()
    };
    r.headers.append("Content-Type", content_type);
    r
}

#[test]
fn usage_comes_from_the_json_body_or_the_last_stream_event_with_one() {
    let r = resp(
        "application/json",
        r#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#,
    );
    assert_eq!(
        usage(&r),
        Some(Usage {
            prompt: 12,
            completion: 30,
            total: 42
        })
    );
    let r = resp(
        "application/json",
        r#"{"usage":{"input_tokens":5,"output_tokens":7}}"#,
    );
    assert_eq!(
        usage(&r),
        Some(Usage {
            prompt: 5,
            completion: 7,
            total: 12
        })
    );
    let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
               data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
               data: [DONE]\n\n";
    assert_eq!(
        usage(&resp("text/event-stream", sse)),
        Some(Usage {
            prompt: 3,
            completion: 2,
            total: 5
        })
    );
    let bare =
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hello, world!\"}}]}\n\ndata: [DONE]\n\n";
    let r = resp("text/event-stream", bare);
    assert_eq!(usage(&r), None);
    assert_eq!(streamed_completion_estimate(&r), 4);
}

#[test]
fn the_prompt_estimate_counts_message_text() {
    let body = br#"{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Hello there"}]}]}"#;
    // 3 + ceil(14/4)=4, 3 + ceil(11/4)=3, + 3
    assert_eq!(estimate_prompt_tokens(body), 16);
    assert_eq!(estimate_prompt_tokens(br#"{"prompt":"abcdefgh"}"#), 2);
    assert_eq!(estimate_prompt_tokens(b""), 0);
    assert_eq!(estimate_prompt_tokens(b"not json!"), 3);
}

fn compile(src: &str) -> Result<LlmTokenLimit, PolicyError> {
    LlmTokenLimit::from_element(&xml::parse(src).unwrap())
}

#[test]
fn token_limit_attributes_follow_apim() {
    let p = compile(r#"<llm-token-limit counter-key="@(context.Subscription.Id)" tokens-per-minute="500" token-quota="10000" token-quota-period="Daily" estimate-prompt-tokens="true" remaining-tokens-header-name="x-rem" />"#).unwrap();
    assert_eq!(p.token_quota_period, QuotaPeriod::Daily);
    assert!(p.estimate_prompt_tokens);
    assert_eq!(p.retry_after_header_name, "Retry-After");
    for (src, want) in [
        (r#"<llm-token-limit counter-key="k" />"#, "are required"),
        (
            r#"<llm-token-limit counter-key="k" token-quota="5" />"#,
            "needs token-quota-period",
        ),
        (
            r#"<llm-token-limit counter-key="k" token-quota="5" token-quota-period="Fortnightly" />"#,
            "Fortnightly",
        ),
        (
            r#"<llm-token-limit tokens-per-minute="5" />"#,
            "counter-key",
        ),
        (
            r#"<llm-token-limit counter-key="k" tokens-per-minute="lots" />"#,
            "non-negative integer",
        ),
        (
            r#"<llm-token-limit counter-key="k" tokens-per-minute="5" frob="1" />"#,
            "frob",
        ),
    ] {
        let e = compile(src).unwrap_err();
        assert!(e.message.contains(want), "{src}: {e:?}");
    }
}

#[test]
fn emit_token_metric_needs_a_dimension() {
    let el = xml::parse(r#"<llm-emit-token-metric namespace="llm"><dimension name="API ID" /></llm-emit-token-metric>"#).unwrap();
    let m = LlmEmitTokenMetric::from_element(&el).unwrap();
    assert_eq!(m.namespace, "llm");
    let el = xml::parse(r#"<llm-emit-token-metric />"#).unwrap();
    assert!(LlmEmitTokenMetric::from_element(&el).is_err());
}
