use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::policy::context::{ApiInfo, OperationInfo};
use crate::policy::counters::RateLimiter;
use crate::policy::xml;

fn el(src: &str) -> Element {
    xml::parse(src).expect("xml")
}

fn api(id: &str, name: &str) -> ApiInfo {
    ApiInfo {
        id: id.into(),
        name: name.into(),
        ..ApiInfo::default()
    }
}

fn op(id: &str, name: &str) -> OperationInfo {
    OperationInfo {
        id: id.into(),
        name: name.into(),
        ..OperationInfo::default()
    }
}

const T0: Duration = Duration::from_secs(100);

#[test]
fn compiles_rate_limit_with_apis_and_operations() {
    let rl = RateLimit::from_element(&el(r#"<rate-limit calls="20" renewal-period="90"
            remaining-calls-header-name="x-remaining" total-calls-header-name="x-total"
            remaining-calls-variable-name="left">
        <api name="Echo" calls="10" renewal-period="60">
            <operation id="get" calls="2" renewal-period="30"/>
        </api>
    </rate-limit>"#))
    .expect("compiles");
    assert_eq!(rl.limit.calls, 20);
    assert_eq!(rl.limit.period, Duration::from_secs(90));
    assert_eq!(rl.apis[0].target, Target::Name("Echo".into()));
    assert_eq!(rl.apis[0].operations[0].target, Target::Id("get".into()));
    assert_eq!(rl.outputs.retry_after_header_name, "Retry-After");

    for bad in [
        r#"<rate-limit renewal-period="10"/>"#,
        r#"<rate-limit calls="1" renewal-period="301"/>"#,
        r#"<rate-limit calls="1" renewal-period="0"/>"#,
        r#"<rate-limit calls="x" renewal-period="10"/>"#,
        r#"<rate-limit calls="1" renewal-period="10" colour="red"/>"#,
        r#"<rate-limit calls="1" renewal-period="10"><api calls="1" renewal-period="1"/></rate-limit>"#,
        r#"<rate-limit calls="1" renewal-period="10"><quota/></rate-limit>"#,
        r#"<rate-limit calls="1" renewal-period="10" retry-after-header-name="@(1)"/>"#,
    ] {
        assert!(RateLimit::from_element(&el(bad)).is_err(), "{bad}");
    }
}

#[test]
fn product_api_and_operation_limits_apply_independently() {
    let rl = RateLimit::from_element(&el(r#"<rate-limit calls="5" renewal-period="60"
            remaining-calls-header-name="x-remaining" total-calls-header-name="x-total">
        <api id="echo" calls="3" renewal-period="60">
            <operation name="Get it" calls="2" renewal-period="60"/>
        </api>
    </rate-limit>"#))
    .expect("compiles");
    let mut limiter = RateLimiter::<Duration>::new(100, 0);
    let (a, get, post) = (api("echo", "Echo"), op("get", "Get it"), op("post", "Post"));
    let on_get = rl.counters("product:p", "sub1", &a, &get);
    assert_eq!(on_get.len(), 3);
    let on_post = rl.counters("product:p", "sub1", &a, &post);
    assert_eq!(on_post.len(), 2);
    assert_eq!(
        rl.counters("product:p", "sub1", &api("other", "Other"), &get)
            .len(),
        1
    );

    assert_eq!(
        rl.apply(&mut limiter, &on_get, T0),
        RateOutcome::Allowed {
            remaining: 1,
            total: 2
        }
    );
    assert!(matches!(
        rl.apply(&mut limiter, &on_get, T0),
        RateOutcome::Allowed { remaining: 0, .. }
    ));
    // The operation limit refuses the third GET...
    let limited = rl.apply(&mut limiter, &on_get, T0);
    assert!(
        matches!(limited, RateOutcome::Limited { total: 2, .. }),
        "{limited:?}"
    );
    // ...but a POST still fits the API limit (3), then that refuses.
    assert!(matches!(
        rl.apply(&mut limiter, &on_post, T0),
        RateOutcome::Allowed { remaining: 0, .. }
    ));
    assert!(matches!(
        rl.apply(&mut limiter, &on_post, T0),
        RateOutcome::Limited { total: 3, .. }
    ));
    // Another subscription has its own counters.
    let other = rl.counters("product:p", "sub2", &a, &get);
    assert!(matches!(
        rl.apply(&mut limiter, &other, T0),
        RateOutcome::Allowed { .. }
    ));

    let f = rl.failure(&limited);
    assert_eq!(f.reason, "RateLimitExceeded");
    let resp = f.response.expect("response");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.headers.get("Content-Type"), Some("application/json"));
    let secs = resp.headers.get("Retry-After").expect("retry-after");
    // Both GETs came at T0, in the operation counter's first bucket: they
    // slide out one renewal period later, never more.
    assert_eq!(secs, "60");
    assert_eq!(
        resp.body.as_deref(),
        Some(
            &br#"{ "statusCode": 429, "message": "Rate limit is exceeded. Try again in 60 seconds." }"#[..]
        )
    );
    // The wait is honest: 60 s later the third GET goes through.
    assert!(matches!(
        rl.apply(&mut limiter, &on_get, T0 + Duration::from_secs(59)),
        RateOutcome::Limited { .. }
    ));
    assert!(matches!(
        rl.apply(&mut limiter, &on_get, T0 + Duration::from_secs(60)),
        RateOutcome::Allowed { .. }
    ));
    assert_eq!(
        rl.outputs.response_headers(&RateOutcome::Allowed {
            remaining: 4,
            total: 5
        }),
        vec![
            ("x-remaining".to_string(), "4".to_string()),
            ("x-total".to_string(), "5".to_string())
        ]
    );
}

#[test]
fn rate_limit_by_key_counts_per_key() {
    let p = RateLimitByKey::from_element(&el(r#"<rate-limit-by-key calls="2" renewal-period="10"
        counter-key="client-1" increment-count="1" retry-after-header-name="x-retry"
        retry-after-variable-name="wait" remaining-calls-variable-name="left"/>"#))
    .expect("compiles");
    assert!(!p.defers_increment());
    let ctx = Context {
        fixed: crate::policy::context::Static {
            api: Arc::new(ApiInfo::default()),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = p.resolve(&ctx).expect("resolves");
    assert_eq!(r.key, CounterKey::new("rate-limit-by-key", "client-1"));
    assert_eq!(r.limit.period, Duration::from_secs(10));
    let mut limiter = RateLimiter::<Duration>::new(100, 0);
    let first = p.check(&mut limiter, &r, T0);
    assert_eq!(
        first,
        RateOutcome::Allowed {
            remaining: 1,
            total: 2
        }
    );
    assert_eq!(
        p.outputs.variables(&first),
        vec![("left".into(), Value::Int(1))]
    );
    p.check(&mut limiter, &r, T0);
    let limited = p.check(&mut limiter, &r, T0 + Duration::from_secs(5));
    let RateOutcome::Limited { retry_after, .. } = limited else {
        panic!("{limited:?}")
    };
    // Both counted calls are in the bucket starting at T0, which leaves the
    // 10 s window at T0 + 10 s: 5 s after this refusal.
    assert_eq!(retry_after, Duration::from_secs(5));
    assert_eq!(
        p.outputs.variables(&limited),
        vec![
            ("wait".into(), Value::Int(5)),
            ("left".into(), Value::Int(0))
        ]
    );
    let resp = p.failure(&limited).response.expect("response");
    assert_eq!(resp.headers.get("x-retry"), Some("5"));
    assert!(!resp.headers.contains("Retry-After"));
}

#[test]
fn literal_false_condition_never_counts() {
    let p = RateLimitByKey::from_element(&el(
        r#"<rate-limit-by-key calls="1" renewal-period="10" counter-key="k" increment-condition="false"/>"#,
    ))
    .expect("compiles");
    let mut limiter = RateLimiter::<Duration>::new(100, 0);
    let r = p.resolve(&Context::default()).expect("resolves");
    for _ in 0..5 {
        assert!(matches!(
            p.check(&mut limiter, &r, T0),
            RateOutcome::Allowed { .. }
        ));
    }
    assert_eq!(p.should_increment(&Context::default()), Ok(false));
    // The deferred path counts when the pipeline calls it.
    p.increment(&mut limiter, &r, T0);
    assert!(matches!(
        p.check(&mut limiter, &r, T0),
        RateOutcome::Limited { .. }
    ));

    for bad in [
        r#"<rate-limit-by-key calls="1" renewal-period="10"/>"#,
        r#"<rate-limit-by-key calls="1" renewal-period="1000" counter-key="k"/>"#,
        r#"<rate-limit-by-key calls="1" renewal-period="10" counter-key="k" increment-condition="maybe"/>"#,
        r#"<rate-limit-by-key calls="-1" renewal-period="10" counter-key="k"/>"#,
    ] {
        assert!(RateLimitByKey::from_element(&el(bad)).is_err(), "{bad}");
    }
}
