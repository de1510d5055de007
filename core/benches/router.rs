//! Route lookup time against the number of APIs: it should stay flat from 10 to 10,000.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::router::{RouteOutcome, VersionInput};
use serde_json::json;

/// A snapshot of `n` APIs, four segments deep, each with five operations (some with params).
fn config(n: usize) -> CompiledConfig {
    let apis: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("api-{i}"),
                "path": api_path(i),
                "serviceUrl": format!("http://10.0.{}.{}:8080/base", i / 250 % 250, i % 250),
                "operations": [
                    {"id": "list", "method": "GET", "urlTemplate": "/items"},
                    {"id": "create", "method": "POST", "urlTemplate": "/items"},
                    {"id": "get", "method": "GET", "urlTemplate": "/items/{id}"},
                    {"id": "update", "method": "PUT", "urlTemplate": "/items/{id}"},
                    {"id": "history", "method": "GET", "urlTemplate": "/items/{id}/history/{rev}"}
                ]
            })
        })
        .collect();
    let doc = json!({"revision": 1, "apis": apis});
    let snapshot = Snapshot::from_json(doc.to_string().as_bytes()).expect("bench snapshot parses");
    CompiledConfig::compile(snapshot).expect("bench snapshot compiles")
}

fn api_path(i: usize) -> String {
    format!("org{}/team{}/svc{i}/v1", i % 10, i % 100)
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in [10usize, 1_000, 10_000] {
        let compiled = config(n);
        let router = compiled.router();
        // The last API added, deepest path, with two captured parameters.
        let hit = format!("/{}/items/12345/history/7", api_path(n - 1));
        let miss = "/org1/team1/unknown/v1/items/12345";
        assert!(matches!(
            router.route(Some(b"gw.example.com"), &Method::GET, hit.as_bytes()),
            RouteOutcome::Matched(m) if m.api as usize == n - 1 && m.operation == 4
        ));
        assert_eq!(
            router.route(Some(b"gw.example.com"), &Method::GET, miss.as_bytes()),
            RouteOutcome::NotFound
        );
        group.bench_with_input(BenchmarkId::new("hit-deep", n), &hit, |b, path| {
            b.iter(|| {
                router.route(
                    black_box(Some(b"gw.example.com".as_slice())),
                    black_box(&Method::GET),
                    black_box(path.as_bytes()),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, path| {
            b.iter(|| {
                router.route(
                    black_box(Some(b"gw.example.com".as_slice())),
                    black_box(&Method::GET),
                    black_box(path.as_bytes()),
                )
            })
        });
    }
    group.finish();
}

/// `n` version sets, their schemes in turn Segment, Header, Query, each with
/// three versions, each version with a current and a non-current revision:
/// `6 n` APIs.
fn versioned_config(n: usize) -> CompiledConfig {
    let ops = json!([
        {"id": "list", "method": "GET", "urlTemplate": "/items"},
        {"id": "get", "method": "GET", "urlTemplate": "/items/{id}"},
        {"id": "history", "method": "GET", "urlTemplate": "/items/{id}/history/{rev}"}
    ]);
    let schemes = ["Segment", "Header", "Query"];
    let mut sets = Vec::with_capacity(n);
    let mut apis = Vec::with_capacity(n * 6);
    for i in 0..n {
        sets.push(json!({
            "id": format!("set-{i}"),
            "versioningScheme": schemes[i % 3],
            "versionHeaderName": "Api-Version",
            "versionQueryName": "api-version",
            "defaultVersion": "v1"
        }));
        for v in 1..=3 {
            let base = format!("api-{i}-v{v}");
            apis.push(json!({
                "id": base, "path": api_path(i), "serviceUrl": "http://10.0.0.1:8080",
                "apiVersionSetId": format!("set-{i}"), "apiVersion": format!("v{v}"),
                "apiRevision": 2, "operations": ops
            }));
            apis.push(json!({
                "id": format!("{base}-r1"), "path": api_path(i), "serviceUrl": "http://10.0.0.1:8080",
                "apiVersionSetId": format!("set-{i}"), "apiVersion": format!("v{v}"),
                "apiRevision": 1, "isCurrent": false, "apiRevisionOf": base, "operations": ops
            }));
        }
    }
    let doc = json!({"revision": 1, "versionSets": sets, "apis": apis});
    let snapshot = Snapshot::from_json(doc.to_string().as_bytes()).expect("bench snapshot parses");
    CompiledConfig::compile(snapshot).expect("bench snapshot compiles")
}

/// A request's version header and query string.
struct Req {
    header: Option<&'static [u8]>,
    query: Option<&'static [u8]>,
}

impl VersionInput for Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.header
            .filter(|_| name.eq_ignore_ascii_case("api-version"))
    }
    fn query(&self) -> Option<&[u8]> {
        self.query
    }
}

/// 1,000 APIs × 3 versions × 2 revisions: a version by each scheme, a
/// non-current revision, next to the plain lookup above.
fn versioned(c: &mut Criterion) {
    let mut group = c.benchmark_group("route-versions");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let n = 1_000;
    let compiled = versioned_config(n);
    let router = compiled.router();
    let tail = "items/12345/history/7";
    // Sets 999 (i % 3 == 0: Segment), 998 (Query), 997 (Header).
    let cases: [(&str, String, Req, String); 4] = [
        (
            "segment",
            format!("/{}/v2/{tail}", api_path(999)),
            Req {
                header: None,
                query: None,
            },
            "api-999-v2".to_owned(),
        ),
        (
            "header",
            format!("/{}/{tail}", api_path(997)),
            Req {
                header: Some(b"v3"),
                query: None,
            },
            "api-997-v3".to_owned(),
        ),
        (
            "query",
            format!("/{}/{tail}", api_path(998)),
            Req {
                header: None,
                query: Some(b"a=1&api-version=v2"),
            },
            "api-998-v2".to_owned(),
        ),
        (
            "revision",
            format!("/{}/v3;rev=1/{tail}", api_path(999)),
            Req {
                header: None,
                query: None,
            },
            "api-999-v3-r1".to_owned(),
        ),
    ];
    for (name, path, req, want) in &cases {
        let route =
            router.route_versioned(Some(b"gw.example.com"), &Method::GET, path.as_bytes(), req);
        assert!(
            matches!(route, RouteOutcome::Matched(ref m) if compiled.api(m.api as usize).id == *want),
            "{name}: {route:?}"
        );
        group.bench_with_input(BenchmarkId::new(*name, n), path, |b, path| {
            b.iter(|| {
                router.route_versioned(
                    black_box(Some(b"gw.example.com".as_slice())),
                    black_box(&Method::GET),
                    black_box(path.as_bytes()),
                    black_box(req),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, versioned);
criterion_main!(benches);
