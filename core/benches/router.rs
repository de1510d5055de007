//! Route lookup time against the number of APIs: it should stay flat from 10 to 10,000.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::router::RouteOutcome;
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

criterion_group!(benches, lookups);
criterion_main!(benches);
