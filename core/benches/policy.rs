//! Policy engine costs: a request through `ProxyConn` with a typical API policy
//! (against the same request without policies), the parts of it (context,
//! pipeline, expressions), and compiling a large configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::expr::Expr;
use portcullis_core::http::Limits;
use portcullis_core::http::{Headers, Url};
use portcullis_core::policy::context::{Context, Request, Static};
use portcullis_core::policy::pipeline::{Env, Pipeline, Step};
use portcullis_core::policy::store::LocalStore;
use portcullis_core::proxy::{ConfigSource, ConnSettings, Event, PolicyEnv, ProxyConn, Timeouts};

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

/// A typical API policy: a per-subscription rate limit (never reached), a
/// header, a URL rewrite and a branch on a request header.
const API_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="1000000000" renewal-period="60" counter-key="@(context.Subscription.Id)" />
    <set-header name="X-Gateway" exists-action="override">
      <value>portcullis</value>
    </set-header>
    <rewrite-uri template="/v2/items/{id}" />
    <choose>
      <when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tier&quot;, &quot;&quot;) == &quot;gold&quot;)">
        <set-header name="X-Priority" exists-action="override">
          <value>high</value>
        </set-header>
      </when>
      <otherwise>
        <set-header name="X-Priority" exists-action="override">
          <value>normal</value>
        </set-header>
      </otherwise>
    </choose>
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
  </outbound>
  <on-error>
    <base />
  </on-error>
</policies>"#;

/// The policy set of the load benchmark (as `core/tests/no_alloc.rs`): the
/// rate limit, header and rewrite of `API_POLICY` without its `choose`, and a
/// literal response header.
const LOAD_BENCH_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="1000000000" renewal-period="60" counter-key="@(context.Subscription.Id)" />
    <set-header name="X-Gateway" exists-action="override"><value>portcullis</value></set-header>
    <rewrite-uri template="/v2/items/{id}" />
  </inbound>
  <backend><base /></backend>
  <outbound>
    <base />
    <set-header name="X-Served-By" exists-action="override"><value>portcullis</value></set-header>
  </outbound>
  <on-error><base /></on-error>
</policies>"#;

/// The policies of `API_POLICY`, one at a time (`base` alone: the pipeline's own cost).
const SINGLE_POLICIES: [(&str, &str); 5] = [
    ("base", ""),
    (
        "rate_limit_by_key",
        r#"<rate-limit-by-key calls="1000000000" renewal-period="60" counter-key="@(context.Subscription.Id)" />"#,
    ),
    (
        "set_header",
        r#"<set-header name="X-Gateway" exists-action="override"><value>portcullis</value></set-header>"#,
    ),
    (
        "rewrite_uri",
        r#"<rewrite-uri template="/v2/items/{id}" />"#,
    ),
    (
        "choose",
        r#"<choose><when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tier&quot;, &quot;&quot;) == &quot;gold&quot;)"><set-header name="X-Priority" exists-action="override"><value>high</value></set-header></when><otherwise><set-header name="X-Priority" exists-action="override"><value>normal</value></set-header></otherwise></choose>"#,
    ),
];

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Two APIs behind the same key: `items` with `API_POLICY`, `plain` without policies.
fn pipeline_config() -> Arc<CompiledConfig> {
    config_with(API_POLICY)
}

/// `items` with `policy`, `plain` without policies.
fn config_with(policy: &str) -> Arc<CompiledConfig> {
    let op = serde_json::json!([{"id": "get", "method": "GET", "urlTemplate": "/{id}"}]);
    let snapshot = serde_json::json!({
        "revision": 1,
        "apis": [
            {"id": "items", "path": "items", "serviceUrl": "http://backend.test:9000/v1",
             "operations": op, "policy": policy},
            {"id": "plain", "path": "plain", "serviceUrl": "http://backend.test:9000/v1",
             "operations": op},
        ],
        "subscriptions": [
            {"id": "sub-1", "scope": "/apis", "primaryKey": KEY,
             "secondaryKey": "fedcba9876543210fedcba9876543210"},
        ],
    });
    let snapshot = Snapshot::from_json(snapshot.to_string().as_bytes()).expect("snapshot parses");
    Arc::new(CompiledConfig::compile(snapshot).expect("configuration compiles"))
}

fn request(api: &str) -> Vec<u8> {
    format!(
        "GET /{api}/42?full=true HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\n\
         Accept: application/json\r\nAccept-Encoding: gzip\r\nX-Request-Id: 0123456789\r\n\
         X-Tier: gold\r\nOcp-Apim-Subscription-Key: {KEY}\r\n\r\n"
    )
    .into_bytes()
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\nDate: Tue, 24 Nov 2026 20:00:00 GMT\r\n\r\n{\"id\":42,\"name\":\"an item\"}\n";

fn conn(config: &Arc<CompiledConfig>) -> ProxyConn {
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config.clone())),
        policy: PolicyEnv::default(),
        telemetry: portcullis_core::telemetry::discard(),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(
        settings,
        "192.0.2.1",
        portcullis_core::proxy::IdSeq::default(),
        Instant::now(),
    )
}

/// Handles the machine's events as an adapter does: store requests answered
/// from `store`, the rest dropped; whether a backend connection was asked for.
fn drain(conn: &mut ProxyConn, store: &mut LocalStore, now: Instant) -> bool {
    let mut connected = false;
    while let Some(event) = conn.poll_event() {
        match event {
            Event::ConnectUpstream { .. } => connected = true,
            Event::Store { request, one_way } => {
                let answer = store.answer(&request);
                if !one_way {
                    conn.handle_store_done(answer, now);
                }
            }
            _ => {}
        }
    }
    connected
}

/// One keep-alive request through the machine, as an adapter drives it; the
/// bytes sent upstream and to the client.
fn one_request(
    conn: &mut ProxyConn,
    store: &mut LocalStore,
    request: &[u8],
    now: Instant,
) -> (usize, usize) {
    conn.handle_client_data(request, now);
    let connected = drain(conn, store, now);
    assert!(connected, "request not forwarded");
    conn.handle_upstream_connected(true, now);
    let sent = conn.upstream_pending().len();
    conn.upstream_written(sent, now);
    conn.handle_upstream_data(RESPONSE, now);
    let answered = conn.client_pending().len();
    conn.client_written(answered, now);
    drain(conn, store, now);
    (sent, answered)
}

/// What the policy did to the upstream request, checked once before timing.
fn check_upstream(conn: &mut ProxyConn, store: &mut LocalStore, request: &[u8], policies: bool) {
    let now = Instant::now();
    conn.handle_client_data(request, now);
    drain(conn, store, now);
    conn.handle_upstream_connected(true, now);
    let up = String::from_utf8_lossy(conn.upstream_pending()).into_owned();
    let sent = up.len();
    conn.upstream_written(sent, now);
    conn.handle_upstream_data(RESPONSE, now);
    let down = String::from_utf8_lossy(conn.client_pending()).into_owned();
    conn.client_written(down.len(), now);
    drain(conn, store, now);
    assert!(down.starts_with("HTTP/1.1 200"), "client got: {down}");
    assert!(
        !up.contains(KEY),
        "subscription key forwarded upstream: {up}"
    );
    if policies {
        assert!(up.starts_with("GET /v1/v2/items/42"), "not rewritten: {up}");
        assert!(up.contains("X-Gateway: portcullis"), "no header: {up}");
        assert!(up.contains("X-Priority: high"), "wrong branch: {up}");
    } else {
        assert!(up.starts_with("GET /v1/42?full=true"), "changed: {up}");
    }
}

fn proxy_requests(c: &mut Criterion) {
    let config = pipeline_config();
    let mut g = c.benchmark_group("policy_request");
    for (name, api, policies) in [
        ("typical_api_policy", "items", true),
        ("no_policies", "plain", false),
    ] {
        let req = request(api);
        let mut conn = conn(&config);
        let mut store = LocalStore::new(7);
        check_upstream(&mut conn, &mut store, &req, policies);
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(one_request(
                    &mut conn,
                    &mut store,
                    black_box(&req),
                    Instant::now(),
                ))
            })
        });
    }
    // The load benchmark's policy set (no `choose`, an outbound header).
    let load_config = config_with(LOAD_BENCH_POLICY);
    let req = request("items");
    let mut load_conn = conn(&load_config);
    let mut store = LocalStore::new(7);
    let (sent, answered) = one_request(&mut load_conn, &mut store, &req, Instant::now());
    assert!(
        sent > 0 && answered > 0,
        "load bench policy request not answered"
    );
    g.bench_function("load_bench_policy", |b| {
        b.iter(|| {
            black_box(one_request(
                &mut load_conn,
                &mut store,
                black_box(&req),
                Instant::now(),
            ))
        })
    });
    g.finish();

    // The two halves of the policy request: client request in → upstream head
    // out (context, inbound, backend), and backend response in → client
    // response out (outbound, response writing).
    let mut g = c.benchmark_group("policy_request_halves");
    for (name, api) in [("typical_api_policy", "items"), ("no_policies", "plain")] {
        let req = request(api);
        let mut conn = conn(&config);
        let mut store = LocalStore::new(7);
        let mut halves = |request_half: bool, iters: u64| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let now = Instant::now();
                conn.handle_client_data(black_box(&req), now);
                drain(&mut conn, &mut store, now);
                conn.handle_upstream_connected(true, now);
                let sent = conn.upstream_pending().len();
                conn.upstream_written(sent, now);
                let t1 = Instant::now();
                conn.handle_upstream_data(black_box(RESPONSE), now);
                let answered = conn.client_pending().len();
                conn.client_written(answered, now);
                drain(&mut conn, &mut store, now);
                let t2 = Instant::now();
                spent += if request_half { t1 - now } else { t2 - t1 };
            }
            spent
        };
        g.bench_function(format!("{name}/request_half"), |b| {
            b.iter_custom(|iters| halves(true, iters))
        });
        g.bench_function(format!("{name}/response_half"), |b| {
            b.iter_custom(|iters| halves(false, iters))
        });
    }
    g.finish();
}

/// The context `ProxyConn` builds for the request above (same fields, same
/// allocations), so its cost can be told apart from the pipeline's.
fn sample_context(config: &CompiledConfig) -> Context {
    let mut headers = Headers::new();
    for (n, v) in [
        ("Host", "api.example.com"),
        ("User-Agent", "bench/1.0"),
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip"),
        ("X-Request-Id", "0123456789"),
        ("X-Tier", "gold"),
    ] {
        headers.append(n, v);
    }
    let query = vec![("full".to_string(), "true".to_string())];
    Context {
        fixed: Static {
            api: config.api_info(0).clone(),
            operation: config.operation_info(0, 0).clone(),
            product: None,
            subscription: Some(config.subscription_info(0, false).clone()),
            gateway_id: "portcullis".into(),
            region: "".into(),
            service_name: "portcullis".into(),
            certificates: Default::default(),
        },
        request_id: "0b0e5bd0-57b4-4a2f-9c39-5d1a83b9a7c1".to_string(),
        request: Request {
            method: "GET".to_string(),
            url: Url {
                scheme: "http".to_string(),
                host: "backend.test".to_string(),
                port: 9000,
                path: "/v1/42".to_string(),
                query: query.clone(),
            },
            original_url: Url {
                scheme: "http".to_string(),
                host: "api.example.com".to_string(),
                port: 80,
                path: "/items/42".to_string(),
                query,
            },
            headers,
            body: None,
            ip_address: "192.0.2.1".to_string(),
            base_path: "/v1".to_string(),
            matched_parameters: vec![("id".to_string(), "42".to_string())],
            certificate: None,
        },
        ..Default::default()
    }
}

/// Runs the pipeline, answering its store steps from `store`, to its next
/// other step.
fn run_to_forward(
    p: &mut Pipeline,
    ctx: &mut Context,
    env: &Env<'_>,
    store: &mut LocalStore,
) -> Step {
    loop {
        match p.run(ctx, env) {
            Step::Store(request) => {
                let answer = store.answer(&request);
                p.store_done(ctx, answer);
            }
            step => {
                if let Some(writes) = p.side.take_store_writes(env.now, 0) {
                    store.answer(&writes);
                }
                return step;
            }
        }
    }
}

fn policy_parts(c: &mut Criterion) {
    let config = pipeline_config();
    let mut store = LocalStore::new(7);
    let backend = |id: &str| config.backend_url(id);
    let mut g = c.benchmark_group("policy_parts");
    g.bench_function("context_build", |b| {
        b.iter(|| black_box(sample_context(black_box(&config))))
    });
    g.bench_function("chain_and_pipeline_new", |b| {
        b.iter(|| black_box(Pipeline::new(config.chain(0, 0, None))))
    });
    // Inbound up to the forward step: rate limit, headers, rewrite, choose.
    let ctx = sample_context(&config);
    g.bench_function("pipeline_inbound", |b| {
        b.iter_batched(
            || (ctx.clone(), Pipeline::new(config.chain(0, 0, None))),
            |(mut ctx, mut p)| {
                let env = Env {
                    now: Instant::now(),
                    backend: &backend,
                    tls: &portcullis_core::policy::auth_cert::NoTls,
                };
                let step = run_to_forward(&mut p, &mut ctx, &env, &mut store);
                assert!(matches!(step, Step::Forward(_)));
                black_box((ctx, p))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("context_clone", |b| b.iter(|| black_box(ctx.clone())));
    let policy_env = PolicyEnv::default();
    let mut ids = portcullis_core::proxy::IdSeq::new(1);
    g.bench_function("request_id", |b| {
        b.iter(|| black_box(policy_env.next_request_id(&mut ids)))
    });
    // Each policy of API_POLICY alone.
    for (name, inbound) in SINGLE_POLICIES {
        let config = config_with(&format!(
            "<policies><inbound><base />{inbound}</inbound><backend><base /></backend>\
             <outbound><base /></outbound><on-error><base /></on-error></policies>"
        ));
        let backend = |id: &str| config.backend_url(id);
        g.bench_function(format!("inbound_only_{name}"), |b| {
            b.iter_batched(
                || (ctx.clone(), Pipeline::new(config.chain(0, 0, None))),
                |(mut ctx, mut p)| {
                    let env = Env {
                        now: Instant::now(),
                        backend: &backend,
                        tls: &portcullis_core::policy::auth_cert::NoTls,
                    };
                    let step = run_to_forward(&mut p, &mut ctx, &env, &mut store);
                    assert!(matches!(step, Step::Forward(_)));
                    black_box((ctx, p))
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The evaluator's fixed cost per evaluation.
    let constant = Expr::compile("@(true)").expect("compiles");
    g.bench_function("expr_constant", |b| {
        b.iter(|| black_box(constant.eval(&ctx)))
    });
    let header = Expr::compile(r#"@(context.Request.Headers.GetValueOrDefault("X-Tier", ""))"#)
        .expect("compiles");
    g.bench_function("expr_header_lookup", |b| {
        b.iter(|| black_box(header.eval(&ctx)))
    });
    let sub_id = Expr::compile("@(context.Subscription.Id)").expect("compiles");
    g.bench_function("expr_subscription_id", |b| {
        b.iter(|| black_box(sub_id.eval(&ctx)))
    });
    let cond =
        Expr::compile(r#"@(context.Request.Headers.GetValueOrDefault("X-Tier", "") == "gold")"#)
            .expect("compiles");
    g.bench_function("expr_header_condition", |b| {
        b.iter(|| black_box(cond.eval(&ctx)))
    });
    g.finish();
}

const GLOBAL_POLICY: &str = r#"<policies>
  <inbound>
    <set-header name="X-Request-Id" exists-action="skip">
      <value>@(context.RequestId)</value>
    </set-header>
    <choose>
      <when condition="@(context.Request.IpAddress.StartsWith(&quot;10.&quot;))">
        <set-header name="X-Internal" exists-action="override">
          <value>true</value>
        </set-header>
      </when>
    </choose>
  </inbound>
  <backend>
    <forward-request timeout="30" />
  </backend>
  <outbound>
    <set-header name="X-Powered-By" exists-action="delete" />
  </outbound>
  <on-error>
    <set-header name="X-Error-Reason" exists-action="override">
      <value>@(context.LastError.Reason)</value>
    </set-header>
  </on-error>
</policies>"#;

fn product_policy(i: usize) -> String {
    format!(
        r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="{calls}" renewal-period="60" counter-key="@(context.Subscription.Id)" />
    <set-header name="X-Product" exists-action="override">
      <value>@(context.Product.Name)</value>
    </set-header>
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
  </outbound>
  <on-error>
    <base />
  </on-error>
</policies>"#,
        calls = 100 * (i + 1)
    )
}

fn api_policy(i: usize) -> String {
    format!(
        r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="1000" renewal-period="60" counter-key="@(context.Request.IpAddress + &quot;:{i}&quot;)" increment-condition="@(context.Response.StatusCode &lt; 500)" />
    <set-header name="X-Api" exists-action="override">
      <value>api-{i}</value>
    </set-header>
    <choose>
      <when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Version&quot;, &quot;1&quot;) == &quot;2&quot;)">
        <rewrite-uri template="/v2/{{id}}" />
      </when>
      <otherwise>
        <set-query-parameter name="api" exists-action="override">
          <value>{i}</value>
        </set-query-parameter>
      </otherwise>
    </choose>
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
    <set-header name="X-Served-By" exists-action="override">
      <value>@(context.Deployment.GatewayId)</value>
    </set-header>
  </outbound>
  <on-error>
    <base />
  </on-error>
</policies>"#
    )
}

fn operation_policy(api: usize, op: usize) -> String {
    format!(
        r#"<policies>
  <inbound>
    <base />
    <set-variable name="op" value="@(&quot;{api}-{op}-&quot; + context.Operation.Id)" />
    <choose>
      <when condition="@(context.Request.Method == &quot;POST&quot; &amp;&amp; context.Request.Headers.ContainsKey(&quot;X-Idempotency-Key&quot;))">
        <rate-limit-by-key calls="10" renewal-period="1" counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Idempotency-Key&quot;, &quot;&quot;))" />
      </when>
    </choose>
    <set-header name="X-Operation" exists-action="override">
      <value>@((string)context.Variables[&quot;op&quot;])</value>
    </set-header>
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
  </outbound>
  <on-error>
    <base />
  </on-error>
</policies>"#
    )
}

/// 1,000 APIs of 10 operations, 10 products, with policies at every scope.
fn large_snapshot() -> Snapshot {
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let apis: Vec<_> = (0..1000)
        .map(|a| {
            let ops: Vec<_> = (0..10)
                .map(|o| {
                    serde_json::json!({
                        "id": format!("op-{o}"),
                        "method": methods[o % methods.len()],
                        "urlTemplate": format!("/resource-{}/{{id}}", o / methods.len()),
                        "policy": operation_policy(a, o),
                    })
                })
                .collect();
            serde_json::json!({
                "id": format!("api-{a}"),
                "path": format!("api-{a}"),
                "serviceUrl": format!("http://backend-{}.test:8080/svc/{a}", a % 20),
                "operations": ops,
                "policy": api_policy(a),
            })
        })
        .collect();
    let products: Vec<_> = (0..10)
        .map(|p| {
            serde_json::json!({
                "id": format!("product-{p}"),
                "apis": (0..100).map(|a| format!("api-{}", p * 100 + a)).collect::<Vec<_>>(),
                "policy": product_policy(p),
            })
        })
        .collect();
    let subscriptions: Vec<_> = (0..10)
        .map(|p| {
            serde_json::json!({
                "id": format!("sub-{p}"),
                "scope": format!("/products/product-{p}"),
                "primaryKey": format!("{p:032x}"),
                "secondaryKey": format!("{:032x}", p + 1000),
            })
        })
        .collect();
    let snapshot = serde_json::json!({
        "revision": 1,
        "apis": apis,
        "products": products,
        "subscriptions": subscriptions,
        "policy": GLOBAL_POLICY,
    });
    Snapshot::from_json(snapshot.to_string().as_bytes()).expect("snapshot parses")
}

fn compile_config(c: &mut Criterion) {
    let snapshot = large_snapshot();
    // Check it compiles before timing it.
    let compiled = CompiledConfig::compile(snapshot.clone()).expect("configuration compiles");
    drop(compiled);
    let mut g = c.benchmark_group("policy_config");
    g.sample_size(10);
    g.bench_function("compile_1000_apis_x_10_operations", |b| {
        b.iter_batched(
            || snapshot.clone(),
            |s| black_box(CompiledConfig::compile(s).expect("compiles")),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// An order API whose contract (an OpenAPI 3.0 document) has a JSON Schema
/// for the request body, with `validate-content` at API scope.
fn validate_content_config() -> Arc<CompiledConfig> {
    let item = serde_json::json!({
        "type": "object",
        "required": ["sku", "quantity", "price"],
        "properties": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
            "price": {"type": "number", "minimum": 0},
            "gift": {"type": "boolean"}
        }
    });
    let document = serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "Orders", "version": "1"},
        "paths": {"/orders": {"post": {
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Order"}}}},
            "responses": {"201": {"description": "created"}}
        }}},
        "components": {"schemas": {
            "Item": item,
            "Order": {
                "type": "object",
                "required": ["id", "customer", "items"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "customer": {"type": "object", "required": ["name", "email"], "properties": {
                        "name": {"type": "string", "maxLength": 100},
                        "email": {"type": "string", "format": "email"}}},
                    "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Item"}},
                    "notes": {"type": "string", "nullable": true}
                }
            }
        }}
    });
    let policy = r#"<policies><inbound><base />
        <validate-content unspecified-content-type-action="prevent" max-size="102400" size-exceeded-action="prevent">
          <content type="application/json" validate-as="json" action="prevent" />
        </validate-content></inbound><backend><base /></backend>
        <outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let snapshot = serde_json::json!({
        "revision": 1,
        "apis": [{"id": "orders", "path": "shop", "serviceUrl": "http://backend.test:9000/v1",
                  "operations": [{"id": "create", "method": "POST", "urlTemplate": "/orders"}],
                  "openapi": document, "policy": policy}],
        "subscriptions": [
            {"id": "sub-1", "scope": "/apis", "primaryKey": KEY,
             "secondaryKey": "fedcba9876543210fedcba9876543210"},
        ],
    });
    let snapshot = Snapshot::from_json(snapshot.to_string().as_bytes()).expect("snapshot parses");
    Arc::new(CompiledConfig::compile(snapshot).expect("configuration compiles"))
}

/// A valid order of about 1 KiB.
fn order_body() -> bytes::Bytes {
    let items: Vec<serde_json::Value> = (0..14)
        .map(|i| serde_json::json!({"sku": format!("ABC-{:04}", 1000 + i), "quantity": i + 1, "price": 9.99, "gift": i % 2 == 0}))
        .collect();
    let order = serde_json::json!({
        "id": "0b0e5bd0-57b4-4a2f-9c39-5d1a83b9a7c1",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": items,
        "notes": "leave at the door"
    });
    bytes::Bytes::from(serde_json::to_vec(&order).expect("serializes"))
}

/// `validate-content` on a 1 KiB JSON request body: the inbound section up to
/// the forward step, against the same pipeline with no policy.
fn validate_content(c: &mut Criterion) {
    let config = validate_content_config();
    let mut store = LocalStore::new(7);
    let backend = |id: &str| config.backend_url(id);
    let body = order_body();
    assert!((900..1200).contains(&body.len()), "{} bytes", body.len());
    let mut ctx = sample_context(&config);
    ctx.request.method = "POST".into();
    ctx.request.headers.set("Content-Type", "application/json");
    ctx.request.body = Some(body.clone());
    let mut g = c.benchmark_group("policy_validate");
    g.throughput(criterion::Throughput::Bytes(body.len() as u64));
    g.bench_function("validate_content_json_1kib", |b| {
        b.iter_batched(
            || (ctx.clone(), Pipeline::new(config.chain(0, 0, None))),
            |(mut ctx, mut p)| {
                let env = Env {
                    now: Instant::now(),
                    backend: &backend,
                    tls: &portcullis_core::policy::auth_cert::NoTls,
                };
                let step = run_to_forward(&mut p, &mut ctx, &env, &mut store);
                assert!(matches!(step, Step::Forward(_)), "{step:?}");
                black_box((ctx, p))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = proxy_requests, policy_parts, compile_config, validate_content
}
criterion_main!(benches);
