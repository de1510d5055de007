use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::policy::context::{ApiInfo, OperationInfo, Static, SubscriptionInfo};
use crate::policy::xml;

fn el(src: &str) -> Element {
    xml::parse(src).expect("xml")
}

fn get(path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Context {
    let mut ctx = Context {
        fixed: Static {
            api: Arc::new(ApiInfo {
                id: "echo".into(),
                ..ApiInfo::default()
            }),
            operation: Arc::new(OperationInfo {
                id: "get".into(),
                ..OperationInfo::default()
            }),
            ..Static::default()
        },
        ..Context::default()
    };
    ctx.request.method = "GET".into();
    ctx.request.original_url.path = path.into();
    ctx.request.original_url.query = query
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (n, v) in headers {
        ctx.request.headers.append(*n, *v);
    }
    ctx
}

fn lookup(src: &str) -> CacheLookup {
    CacheLookup::from_element(&el(src)).expect("compiles")
}

#[test]
fn cache_keys_vary_as_configured() {
    let l = lookup(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" caching-type="internal">
            <vary-by-header>Accept</vary-by-header>
            <vary-by-query-parameter>version;b</vary-by-query-parameter>
            <vary-by-query-parameter>a</vary-by-query-parameter>
        </cache-lookup>"#,
    );
    assert_eq!(l.vary_by_query_parameters, vec!["a", "b", "version"]);
    let key = |q: &[(&str, &str)], h: &[(&str, &str)]| {
        l.cache_key(&get("/items", q, h)).expect("ok").expect("key")
    };
    let base = key(
        &[("version", "1"), ("a", "x")],
        &[("Accept", "application/json")],
    );
    // Parameter order and unlisted parameters do not matter.
    assert_eq!(
        base,
        key(
            &[("a", "x"), ("other", "y"), ("version", "1")],
            &[("accept", "application/json"), ("X-Other", "1")]
        )
    );
    assert_ne!(
        base,
        key(
            &[("version", "2"), ("a", "x")],
            &[("Accept", "application/json")]
        )
    );
    assert_ne!(
        base,
        key(&[("version", "1"), ("a", "x")], &[("Accept", "text/xml")])
    );
    assert_ne!(base, key(&[("version", "1"), ("a", "x")], &[]));
    // Absent and empty differ.
    assert_ne!(key(&[("a", "")], &[]), key(&[], &[]));
    // A value cannot imitate the next part.
    assert_ne!(
        key(&[("a", "x|qb=1")], &[]),
        key(&[("a", "x"), ("b", "1")], &[])
    );
    // Other paths differ; non-GET and Authorization skip the cache.
    assert_ne!(base, {
        let ctx = get(
            "/other",
            &[("version", "1"), ("a", "x")],
            &[("Accept", "application/json")],
        );
        l.cache_key(&ctx).expect("ok").expect("key")
    });
    let mut post = get("/items", &[], &[]);
    post.request.method = "POST".into();
    assert_eq!(l.cache_key(&post), Ok(None));
    let authed = get("/items", &[], &[("Authorization", "Bearer x")]);
    assert_eq!(l.cache_key(&authed), Ok(None));
    let private = lookup(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" allow-private-response-caching="true"><vary-by-header>Authorization</vary-by-header></cache-lookup>"#,
    );
    let a = private.cache_key(&authed).expect("ok").expect("key");
    let b = private
        .cache_key(&get("/items", &[], &[("Authorization", "Bearer y")]))
        .expect("ok")
        .expect("key");
    assert_ne!(a, b);
}

#[test]
fn vary_by_developer_uses_the_subscription() {
    let l = lookup(r#"<cache-lookup vary-by-developer="true" vary-by-developer-groups="false"/>"#);
    let with = |id: &str| {
        let mut ctx = get("/", &[], &[]);
        ctx.fixed.subscription = Some(std::sync::Arc::new(SubscriptionInfo {
            id: id.into(),
            ..SubscriptionInfo::default()
        }));
        l.cache_key(&ctx).expect("ok").expect("key")
    };
    assert_ne!(with("s1"), with("s2"));
    assert_eq!(with("s1"), with("s1"));
}

fn response(status: u16, headers: &[(&str, &str)]) -> Response {
    let mut h = Headers::new();
    for (n, v) in headers {
        h.append(*n, *v);
    }
    Response {
        status,
        reason: "OK".into(),
        headers: h,
        body: Some(Bytes::from_static(b"{}")),
    }
}

#[test]
fn what_may_be_stored() {
    let l = lookup(r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false"/>"#);
    let s = CacheStorePolicy::from_element(&el(r#"<cache-store duration="60"/>"#)).expect("ok");
    let ctx = get("/", &[], &[]);
    let ttl = |ctx: &Context, r: &Response| s.ttl_to_store(&l, ctx, r).expect("ok");
    assert_eq!(
        ttl(&ctx, &response(200, &[])),
        Some(Duration::from_secs(60))
    );
    assert_eq!(ttl(&ctx, &response(404, &[])), None);
    assert_eq!(
        ttl(
            &ctx,
            &response(200, &[("Cache-Control", "max-age=5, no-store")])
        ),
        None
    );
    assert_eq!(
        ttl(&ctx, &response(200, &[("Cache-Control", "private")])),
        None
    );
    assert_eq!(ttl(&ctx, &response(200, &[("Set-Cookie", "a=b")])), None);
    assert_eq!(ttl(&ctx, &response(200, &[("Vary", "*")])), None);
    assert_eq!(
        ttl(
            &ctx,
            &response(200, &[("Cache-Control", "public, max-age=10")])
        ),
        Some(Duration::from_secs(60))
    );
    let authed = get("/", &[], &[("Authorization", "x")]);
    assert_eq!(ttl(&authed, &response(200, &[])), None);
    let any =
        CacheStorePolicy::from_element(&el(r#"<cache-store duration="5" cache-response="true"/>"#))
            .expect("ok");
    assert_eq!(
        any.ttl_to_store(&l, &ctx, &response(404, &[])).expect("ok"),
        Some(Duration::from_secs(5))
    );
    let private = lookup(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" allow-private-response-caching="true"/>"#,
    );
    assert_eq!(
        s.ttl_to_store(
            &private,
            &authed,
            &response(200, &[("Cache-Control", "private")])
        )
        .expect("ok"),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn downstream_cache_control() {
    let ctx = Context::default();
    let none =
        lookup(r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false"/>"#);
    assert_eq!(
        none.downstream_cache_control(&ctx, Duration::from_secs(9)),
        Ok(None)
    );
    let public = lookup(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="public"/>"#,
    );
    assert_eq!(
        public.downstream_cache_control(&ctx, Duration::from_secs(9)),
        Ok(Some("public, max-age=9, must-revalidate".into()))
    );
    let private = lookup(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="private" must-revalidate="false"/>"#,
    );
    assert_eq!(
        private.downstream_cache_control(&ctx, Duration::from_secs(9)),
        Ok(Some("private, max-age=9".into()))
    );
}

#[test]
fn responses_round_trip() {
    let mut r = response(
        201,
        &[
            ("Content-Type", "application/json"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
        ],
    );
    r.reason = "Created".into();
    let enc = encode_response(&r);
    assert_eq!(decode_response(&enc), Some(r.clone()));
    r.body = None;
    assert_eq!(decode_response(&encode_response(&r)), Some(r.clone()));
    r.body = Some(Bytes::new());
    assert_eq!(decode_response(&encode_response(&r)), Some(r));
    // Every truncation and a trailing byte are rejected, never a panic.
    for n in 0..enc.len() {
        assert_eq!(decode_response(&enc.slice(..n)), None, "{n}");
    }
    let mut longer = enc.to_vec();
    longer.push(0);
    assert_eq!(decode_response(&Bytes::from(longer)), None);
    let mut huge_count = enc.to_vec();
    let at = 4 + 2 + 4 + "OK".len();
    huge_count[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode_response(&Bytes::from(huge_count)), None);
    assert_eq!(decode_response(&Bytes::from_static(b"nope")), None);
}

#[test]
fn value_policies() {
    let lv = CacheLookupValue::from_element(&el(
        r#"<cache-lookup-value key="profile-1" default-value="none" variable-name="profile"/>"#,
    ))
    .expect("ok");
    let ctx = Context::default();
    assert_eq!(lv.store_key(&ctx), Ok(value_key("profile-1")));
    assert_eq!(lv.caching_type, CachingType::PreferExternal);
    let sv = CacheStoreValue::from_element(&el(
        r#"<cache-store-value key="profile-1" value="{}" duration="100" caching-type="internal"/>"#,
    ))
    .expect("ok");
    let (k, v, ttl) = sv.resolve(&ctx).expect("ok");
    assert_eq!(
        (k, v, ttl),
        (
            value_key("profile-1"),
            Bytes::from("{}"),
            Duration::from_secs(100)
        )
    );
    let rv = CacheRemoveValue::from_element(&el(r#"<cache-remove-value key="profile-1"/>"#))
        .expect("ok");
    assert_eq!(rv.store_key(&ctx), Ok(value_key("profile-1")));
    assert_ne!(value_key("a"), "response");
    for bad in [
        r#"<cache-lookup-value key="k"/>"#,
        r#"<cache-store-value key="k" value="v"/>"#,
        r#"<cache-store-value key="k" value="v" duration="soon"/>"#,
        r#"<cache-remove-value/>"#,
        r#"<cache-remove-value key="k" caching-type="redis"/>"#,
        r#"<cache-lookup downstream-caching-type="shared"/>"#,
        r#"<cache-lookup><vary-by-header/></cache-lookup>"#,
        r#"<cache-store/>"#,
    ] {
        let e = el(bad);
        let failed = match e.name.as_str() {
            "cache-lookup-value" => CacheLookupValue::from_element(&e).is_err(),
            "cache-store-value" => CacheStoreValue::from_element(&e).is_err(),
            "cache-remove-value" => CacheRemoveValue::from_element(&e).is_err(),
            "cache-lookup" => CacheLookup::from_element(&e).is_err(),
            _ => CacheStorePolicy::from_element(&e).is_err(),
        };
        assert!(failed, "{bad}");
    }
}
