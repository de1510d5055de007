use std::time::Duration;

use super::*;
use crate::policy::context::{ApiInfo, OperationInfo};
use crate::policy::counters::QuotaStore;
use crate::policy::xml;

fn el(src: &str) -> Element {
    xml::parse(src).expect("xml")
}

fn api(id: &str) -> ApiInfo {
    ApiInfo {
        id: id.into(),
        name: id.to_uppercase(),
        ..ApiInfo::default()
    }
}

fn op(id: &str) -> OperationInfo {
    OperationInfo {
        id: id.into(),
        name: id.to_uppercase(),
        ..OperationInfo::default()
    }
}

#[test]
fn compiles_quota() {
    let q = Quota::from_element(&el(
        r#"<quota calls="10000" bandwidth="40000" renewal-period="3600">
        <api name="ECHO" calls="100"><operation id="get" bandwidth="5" renewal-period="60"/></api>
    </quota>"#,
    ))
    .expect("compiles");
    assert_eq!(
        q.spec,
        QuotaSpec {
            calls: Some(10_000),
            kilobytes: Some(40_000),
            period_secs: 3600
        }
    );
    assert_eq!(q.apis[0].spec.period_secs, 3600, "inherited");
    assert_eq!(q.apis[0].operations[0].spec.period_secs, 60);
    for bad in [
        r#"<quota renewal-period="10"/>"#,
        r#"<quota calls="1"/>"#,
        r#"<quota calls="1" renewal-period="x"/>"#,
        r#"<quota calls="1" renewal-period="10" counter-key="k"/>"#,
        r#"<quota calls="1" renewal-period="10"><api calls="1"/></quota>"#,
    ] {
        assert!(Quota::from_element(&el(bad)).is_err(), "{bad}");
    }
}

#[test]
fn quota_per_subscription_and_operation() {
    let q = Quota::from_element(&el(r#"<quota calls="3" renewal-period="300">
        <api id="echo" calls="5"><operation name="GET" calls="1"/></api>
    </quota>"#))
    .expect("compiles");
    let mut store = QuotaStore::default();
    let on_get = q.counters("product:p", "sub", None, &api("echo"), &op("get"));
    let on_post = q.counters("product:p", "sub", None, &api("echo"), &op("post"));
    assert_eq!((on_get.len(), on_post.len()), (3, 2));
    assert_eq!(
        check_and_count_call(&mut store, &on_get, 1_000),
        QuotaOutcome::Allowed {
            remaining_calls: Some(0),
            remaining_bytes: None
        }
    );
    let out = check_and_count_call(&mut store, &on_get, 1_010);
    assert_eq!(
        out,
        QuotaOutcome::Exceeded {
            kind: QuotaKind::Calls,
            retry_after: Some(Duration::from_secs(290))
        }
    );
    let f = q.failure(&out);
    assert_eq!(f.reason, "QuotaExceeded");
    assert_eq!(
        f.message,
        "Out of call volume quota. Quota will be replenished in 00:04:50."
    );
    let resp = f.response.expect("response");
    assert_eq!((resp.status, resp.reason.as_str()), (403, "Quota Exceeded"));
    assert_eq!(resp.headers.get("Retry-After"), Some("290"));
    assert_eq!(
        resp.body.as_deref(),
        Some(&br#"{ "statusCode": 403, "message": "Out of call volume quota. Quota will be replenished in 00:04:50." }"#[..])
    );
    // Subscription-wide 3 calls: two more POSTs fit, then none.
    for _ in 0..2 {
        assert!(matches!(
            check_and_count_call(&mut store, &on_post, 1_020),
            QuotaOutcome::Allowed { .. }
        ));
    }
    assert!(matches!(
        check_and_count_call(&mut store, &on_post, 1_020),
        QuotaOutcome::Exceeded { .. }
    ));
    // Aligned to a subscription start, periods follow it.
    let aligned = q.counters("product:p", "sub2", Some(0), &api("x"), &op("y"));
    assert_eq!(aligned[0].limits.anchor, QuotaAnchor::At(0));
}

#[test]
fn quota_bandwidth_message() {
    let q = Quota::from_element(&el(r#"<quota bandwidth="1" renewal-period="0"/>"#)).expect("ok");
    let mut store = QuotaStore::default();
    let c = q.counters("s", "sub", None, &api("a"), &op("o"));
    assert!(matches!(
        check_and_count_call(&mut store, &c, 0),
        QuotaOutcome::Allowed {
            remaining_bytes: Some(1024),
            ..
        }
    ));
    add_bytes(&mut store, &c, 4096, 1);
    let out = check_and_count_call(&mut store, &c, 2);
    let f = q.failure(&out);
    assert_eq!(f.message, "Out of bandwidth quota.");
    assert!(!f.response.expect("r").headers.contains("Retry-After"));
}

#[test]
fn quota_by_key() {
    let q = QuotaByKey::from_element(&el(r#"<quota-by-key calls="2" renewal-period="600"
        counter-key="10.0.0.1" first-period-start="1970-01-01T00:00:00Z"/>"#))
    .expect("compiles");
    assert!(!q.defers_increment());
    let r = q.resolve(&Context::default()).expect("resolve");
    assert_eq!(r.limits.anchor, QuotaAnchor::At(0));
    let mut store = QuotaStore::default();
    assert!(matches!(
        q.check(&mut store, &r, 2_400),
        QuotaOutcome::Allowed { .. }
    ));
    assert!(matches!(
        q.check(&mut store, &r, 2_401),
        QuotaOutcome::Allowed { .. }
    ));
    let out = q.check(&mut store, &r, 2_496);
    assert_eq!(
        q.failure(&out).message,
        "Out of call volume quota. Quota will be replenished in 00:08:24."
    );
    assert!(matches!(
        q.check(&mut store, &r, 3_000),
        QuotaOutcome::Allowed { .. }
    ));

    let default = QuotaByKey::from_element(&el(
        r#"<quota-by-key calls="2" renewal-period="600" counter-key="k"/>"#,
    ))
    .expect("compiles");
    assert_eq!(default.first_period_start, DEFAULT_FIRST_PERIOD_START);
    for bad in [
        r#"<quota-by-key calls="2" renewal-period="600"/>"#,
        r#"<quota-by-key renewal-period="600" counter-key="k"/>"#,
        r#"<quota-by-key calls="2" renewal-period="600" counter-key="k" first-period-start="2020-02-30T00:00:00Z"/>"#,
        r#"<quota-by-key calls="2" renewal-period="600" counter-key="k" first-period-start="yesterday"/>"#,
    ] {
        assert!(QuotaByKey::from_element(&el(bad)).is_err(), "{bad}");
    }
}

#[test]
fn iso_dates() {
    assert_eq!(parse_iso8601_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_iso8601_utc("0001-01-01T00:00:00Z"),
        Some(DEFAULT_FIRST_PERIOD_START)
    );
    assert_eq!(parse_iso8601_utc("2000-03-01T12:30:15Z"), Some(951_913_815));
    assert_eq!(
        parse_iso8601_utc("2024-02-29T00:00:00"),
        Some(1_709_164_800)
    );
    assert_eq!(parse_iso8601_utc("2023-02-29T00:00:00Z"), None);
    assert_eq!(parse_iso8601_utc("2023-13-01T00:00:00Z"), None);
    assert_eq!(parse_iso8601_utc("2023-01-01T24:00:00Z"), None);
}
