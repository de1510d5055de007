//! Configuration sync benchmark: how long a management API write takes to be
//! served by a connected gateway, and what a 1,000-API snapshot costs to fetch
//! and to compile.
//!
//! Everything runs in this process over real loopback sockets: a management plane
//! (plain HTTP, SQLite in a temporary directory), a tiny backend answering 200,
//! and a gateway in connected mode (long-polling the management plane).
//!
//! ```sh
//! cargo bench --bench sync              # under a minute after the build
//! cargo bench --bench sync -- --quick   # smoke test: fewer rounds
//! ```
//!
//! With `BENCH_SYNC_VERBOSE=1` each propagation round is printed to stderr.
//!
//! Prints markdown tables; BENCHMARKS.md has a run and what it means.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use portcullis_core::callout::{CalloutLimits, CalloutRequest};
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Response;
use portcullis_management::{Management, ManagementOptions};
use portcullis_runtime_tokio::{
    Callouts, Gateway, GatewayOptions, ManagedOptions, MAX_SNAPSHOT_BYTES,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The admin token the management plane is started with.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
/// The gateway's id in the management plane.
const GATEWAY_ID: &str = "bench";
/// The API whose outbound policy each propagation round changes.
const PROBE_API: &str = "probe";
/// APIs in the large configuration (the probe API included).
const LARGE_APIS: usize = 1000;
/// Operations per API in the large configuration.
const OPERATIONS: usize = 10;
/// Longest any single wait in the benchmark may take.
const WAIT: Duration = Duration::from_secs(30);

/// How many times each measurement is taken.
struct Rounds {
    small: usize,
    large: usize,
    fetches: usize,
    cold_fetches: usize,
    compiles: usize,
}

impl Rounds {
    fn from_args() -> Rounds {
        if std::env::args().any(|a| a == "--quick") {
            Rounds {
                small: 20,
                large: 5,
                fetches: 10,
                cold_fetches: 3,
                compiles: 2,
            }
        } else {
            Rounds {
                small: 500,
                large: 100,
                fetches: 50,
                cold_fetches: 10,
                compiles: 5,
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(Rounds::from_args()))
}

async fn run(rounds: Rounds) -> anyhow::Result<()> {
    let started = Instant::now();
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_url = format!("http://{}", backend.local_addr()?);
    let backend_task = tokio::spawn(serve_backend(backend));

    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-sync-")
        .tempdir()?;
    let mut options = ManagementOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
    options.admin_token = Some(ADMIN_TOKEN.to_owned());
    let management = Management::start(options).await?;
    let client = Client::new(management.base_url())?;

    // The probe API, served by the gateway from the start.
    client
        .admin(
            "PUT",
            &format!("/apis/{PROBE_API}"),
            Body::Json(api(PROBE_API, &backend_url, None)),
        )
        .await?;
    client
        .admin(
            "PUT",
            &format!("/gateways/{GATEWAY_ID}"),
            Body::Json(json!({ "location": { "name": "bench" }, "apis": [PROBE_API] })),
        )
        .await?;
    let token = gateway_token(&client).await?;

    let mut options = GatewayOptions::managed(ManagedOptions::new(
        management.base_url().to_owned(),
        token.clone(),
    ));
    options.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    options.ops_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let gateway = Arc::new(Gateway::start(options).await?);
    let probe_url = format!("http://{}/{PROBE_API}/ping", gateway.local_addr());
    wait_applied(&gateway, management_revision(&client).await?).await?;
    let first = client.get(&probe_url, &[]).await?;
    if first.status != 200 {
        bail!(
            "the probe API answered {} through the gateway",
            first.status
        );
    }

    println!("# Configuration sync benchmark\n");
    println!("Times from just before the management API write is sent:");
    println!("- **PUT answered**: the write's own latency (compile of the candidate configuration: every API's routes, the changed API's policy documents; SQLite commit with fsync);");
    println!("- **applied**: the gateway's `revision()` shows the new revision (long-poll answered, snapshot fetched, compiled, swapped in);");
    println!("- **served**: a GET through the gateway, sent once the revision is applied, carries the new header.\n");

    let small = propagation(&client, &gateway, &probe_url, rounds.small, 0).await?;
    small.print(&format!(
        "Propagation, 1 API served ({} rounds)",
        rounds.small
    ));

    // The large configuration: 999 more APIs of 10 operations with a small policy.
    let load_started = Instant::now();
    let mut put_times = Vec::with_capacity(LARGE_APIS);
    let mut api_ids = vec![PROBE_API.to_owned()];
    for a in 1..LARGE_APIS {
        let id = format!("api-{a}");
        let body = api(&id, &backend_url, Some(a));
        let t = Instant::now();
        client
            .admin("PUT", &format!("/apis/{id}"), Body::Json(body))
            .await?;
        put_times.push(t.elapsed());
        api_ids.push(id);
    }
    let load_total = load_started.elapsed();

    let assign_started = Instant::now();
    let assigned = client
        .admin(
            "PUT",
            &format!("/gateways/{GATEWAY_ID}"),
            Body::Json(json!({ "location": { "name": "bench" }, "apis": api_ids })),
        )
        .await?;
    let assign_put = assign_started.elapsed();
    wait_applied(&gateway, etag_revision(&assigned)?).await?;
    let assign_applied = assign_started.elapsed();

    println!(
        "### Loading {} APIs × {OPERATIONS} operations into the management plane\n",
        LARGE_APIS - 1
    );
    println!("| step | time |");
    println!("| --- | ---: |");
    println!(
        "| {} `PUT /apis/{{id}}`, one after another | {:.2} s total, {:.0} APIs/s |",
        LARGE_APIS - 1,
        load_total.as_secs_f64(),
        (LARGE_APIS - 1) as f64 / load_total.as_secs_f64()
    );
    let puts = Stats::of(&put_times);
    println!(
        "| one `PUT /apis/{{id}}`: median / p99 / max | {} / {} / {} ms |",
        ms(puts.median),
        ms(puts.p99),
        ms(puts.max)
    );
    let tenth = put_times.len() / 10;
    println!(
        "| one `PUT /apis/{{id}}`, median of the first / last {tenth} | {} / {} ms |",
        ms(Stats::of(&put_times[..tenth]).median),
        ms(Stats::of(&put_times[put_times.len() - tenth..]).median)
    );
    println!(
        "| `PUT /gateways/{GATEWAY_ID}` assigning all {LARGE_APIS} APIs: answered | {} ms |",
        ms(assign_put)
    );
    println!(
        "| ... applied by the gateway (first fetch and compile of the large snapshot) | {} ms |\n",
        ms(assign_applied)
    );

    let large = propagation(&client, &gateway, &probe_url, rounds.large, rounds.small).await?;
    large.print(&format!(
        "Propagation, {LARGE_APIS} APIs × {OPERATIONS} operations served ({} rounds)",
        rounds.large
    ));

    // The snapshot itself, with the gateway stopped so that nothing else fetches or
    // compiles meanwhile.
    let gateway =
        Arc::try_unwrap(gateway).map_err(|_| anyhow::anyhow!("the gateway is still shared"))?;
    gateway.shutdown().await;

    let config_url = format!(
        "{}/gateways/{GATEWAY_ID}/configuration",
        management.base_url()
    );
    let auth = [("Authorization".to_owned(), token.clone())];
    let body = fetch_snapshot(&client, &config_url, &auth).await?;
    let mut warm = Vec::with_capacity(rounds.fetches);
    for _ in 0..rounds.fetches {
        let t = Instant::now();
        let fetched = fetch_snapshot(&client, &config_url, &auth).await?;
        warm.push(t.elapsed());
        if fetched.len() != body.len() {
            bail!("the snapshot changed between fetches");
        }
    }
    // A cold fetch: the revision moved (a user added, which no gateway serves), so
    // the management plane builds and serializes the gateway's snapshot again.
    let mut cold = Vec::with_capacity(rounds.cold_fetches);
    for k in 0..rounds.cold_fetches {
        client
            .admin(
                "PUT",
                &format!("/users/bench-user-{k}"),
                Body::Json(json!({
                    "email": format!("bench-{k}@example.com"),
                    "firstName": "Bench",
                    "lastName": format!("User {k}"),
                    "state": "active",
                })),
            )
            .await?;
        let t = Instant::now();
        fetch_snapshot(&client, &config_url, &auth).await?;
        cold.push(t.elapsed());
    }
    // What the gateway does with a fetched body: parse, then compile every API,
    // operation and policy document, routes and key index.
    let mut parse = Vec::with_capacity(rounds.compiles);
    let mut compile = Vec::with_capacity(rounds.compiles);
    let mut structure_compile = Vec::with_capacity(rounds.compiles);
    let mut free = Vec::with_capacity(rounds.compiles);
    for _ in 0..rounds.compiles {
        let t = Instant::now();
        let snapshot = Snapshot::from_json(&body).context("parsing the fetched snapshot")?;
        parse.push(t.elapsed());
        if snapshot.apis.len() != LARGE_APIS {
            bail!("the snapshot has {} APIs", snapshot.apis.len());
        }
        let mut structure = snapshot.clone();
        let t = Instant::now();
        let compiled = CompiledConfig::compile(snapshot).context("compiling the snapshot")?;
        compile.push(t.elapsed());
        // The gateway frees the configuration it replaces, the management plane its
        // checked candidate.
        let t = Instant::now();
        drop(compiled);
        free.push(t.elapsed());
        // What a management write of one API compiles: everything but the other
        // APIs' policy documents (here: no API's).
        for api in &mut structure.apis {
            api.policy = None;
            for op in &mut api.operations {
                op.policy = None;
            }
        }
        let t = Instant::now();
        let compiled = CompiledConfig::compile(structure).context("compiling the structure")?;
        structure_compile.push(t.elapsed());
        drop(compiled);
    }

    let (warm, cold, parse, compile, free, structure_compile) = (
        Stats::of(&warm),
        Stats::of(&cold),
        Stats::of(&parse),
        Stats::of(&compile),
        Stats::of(&free),
        Stats::of(&structure_compile),
    );
    println!("### Snapshot of {LARGE_APIS} APIs × {OPERATIONS} operations\n");
    println!("| measure | median | p90 | max | n |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| size of `GET /gateways/{{id}}/configuration` (JSON) | {} bytes ({:.2} MiB) | | | |",
        group(body.len()),
        body.len() as f64 / (1024.0 * 1024.0)
    );
    warm.row("fetch, snapshot cached for the revision (ms)");
    cold.row("fetch after a revision change: built and serialized (ms)");
    parse.row("gateway: `Snapshot::from_json` (ms)");
    compile.row("gateway: `CompiledConfig::compile` (ms)");
    free.row("dropping the compiled configuration (ms)");
    structure_compile.row(
        "`CompiledConfig::compile` without policy documents, as a management write checks (ms)",
    );
    println!();
    println!("Whole run: {:.1} s.", started.elapsed().as_secs_f64());

    management.shutdown().await;
    backend_task.abort();
    Ok(())
}

/// Write → served times of one set of rounds.
struct Propagation {
    put: Vec<Duration>,
    applied: Vec<Duration>,
    served: Vec<Duration>,
    /// GETs after the applied one that still had the old policy (expected: none).
    extra_gets: usize,
}

impl Propagation {
    fn print(&self, title: &str) {
        println!("### {title}\n");
        println!("| from the write's start to | median | p90 | p99 | max |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (name, samples) in [
            ("PUT answered (ms)", &self.put),
            ("applied by the gateway (ms)", &self.applied),
            ("**served** (ms)", &self.served),
        ] {
            let s = Stats::of(samples);
            println!(
                "| {name} | {} | {} | {} | {} |",
                ms(s.median),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        println!(
            "\nGETs that still saw the old policy after the revision was applied: {}.\n",
            self.extra_gets
        );
    }
}

/// `rounds` policy changes of the probe API, each timed until served.
async fn propagation(
    client: &Client,
    gateway: &Arc<Gateway>,
    probe_url: &str,
    rounds: usize,
    first_version: usize,
) -> anyhow::Result<Propagation> {
    let mut result = Propagation {
        put: Vec::with_capacity(rounds),
        applied: Vec::with_capacity(rounds),
        served: Vec::with_capacity(rounds),
        extra_gets: 0,
    };
    for round in 0..rounds {
        let version = (first_version + round).to_string();
        let before = management_revision(client).await?;
        if gateway.revision() != Some(before) {
            bail!("the gateway is not at the current revision {before}");
        }
        let policy = probe_policy(&version);
        let put_client = client.clone();
        let start = Instant::now();
        // The write runs on its own task, so that the gateway is watched meanwhile.
        let put = tokio::spawn(async move {
            put_client
                .admin(
                    "PUT",
                    &format!("/apis/{PROBE_API}/policy"),
                    Body::Xml(policy),
                )
                .await
                .map(|response| (Instant::now(), response))
        });
        let applied = wait_applied(gateway, before + 1).await?;
        // Confirm through the data path: a request sent now gets the new policy.
        let mut gets = 0;
        let served = loop {
            let response = client.get(probe_url, &[]).await?;
            gets += 1;
            if response.headers.get("x-version") == Some(version.as_str()) {
                break Instant::now();
            }
            if start.elapsed() > WAIT {
                bail!("version {version} applied but not served");
            }
        };
        let (put_done, put_response) = put.await.context("the PUT task failed")??;
        if etag_revision(&put_response)? != before + 1 {
            bail!("the policy write was not revision {}", before + 1);
        }
        if std::env::var_os("BENCH_SYNC_VERBOSE").is_some() {
            eprintln!(
                "round {round}: put {} applied {} served {} gets {gets}",
                ms(put_done - start),
                ms(applied - start),
                ms(served - start)
            );
        }
        result.put.push(put_done - start);
        result.applied.push(applied - start);
        result.served.push(served - start);
        result.extra_gets += gets - 1;
    }
    Ok(result)
}

/// Waits until the gateway's revision is at least `revision`; returns when it saw it.
/// Watched from a blocking thread with 50 µs sleeps: finer than tokio's 1 ms
/// timer, and without taking a runtime worker away from the gateway.
async fn wait_applied(gateway: &Arc<Gateway>, revision: u64) -> anyhow::Result<Instant> {
    let gateway = Arc::clone(gateway);
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        loop {
            if gateway.revision().is_some_and(|r| r >= revision) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("the gateway did not apply revision {revision} within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    })
    .await?
}

/// The management plane's current revision.
async fn management_revision(client: &Client) -> anyhow::Result<u64> {
    let answer = client.admin("GET", "/revision", Body::None).await?;
    let value: Value = serde_json::from_slice(&answer.body.unwrap_or_default())?;
    value["revision"]
        .as_u64()
        .context("the revision answer has no number")
}

/// The revision in a write's `ETag: "<revision>"`.
fn etag_revision(response: &Response) -> anyhow::Result<u64> {
    response
        .headers
        .get("etag")
        .and_then(|tag| tag.trim_matches('"').parse().ok())
        .context("the answer has no revision ETag")
}

/// A fresh gateway token from the management API.
async fn gateway_token(client: &Client) -> anyhow::Result<String> {
    let answer = client
        .admin(
            "POST",
            &format!("/gateways/{GATEWAY_ID}/token"),
            Body::Json(json!({ "keyType": "primary" })),
        )
        .await?;
    let value: Value = serde_json::from_slice(&answer.body.unwrap_or_default())?;
    Ok(value["value"]
        .as_str()
        .context("the token answer has no value")?
        .to_owned())
}

/// `GET /gateways/{id}/configuration` with the gateway token; the body of the 200.
async fn fetch_snapshot(
    client: &Client,
    url: &str,
    auth: &[(String, String)],
) -> anyhow::Result<Bytes> {
    let response = client.get(url, auth).await?;
    if response.status != 200 {
        bail!("configuration fetch: status {}", response.status);
    }
    Ok(response.body.unwrap_or_default())
}

/// The probe API's policy: an outbound header naming the version.
fn probe_policy(version: &str) -> String {
    format!(
        r#"<policies>
  <inbound><base /></inbound>
  <backend><base /></backend>
  <outbound>
    <base />
    <set-header name="X-Version" exists-action="override"><value>{version}</value></set-header>
  </outbound>
  <on-error><base /></on-error>
</policies>"#
    )
}

/// An API of the benchmark: 10 operations; generated ones (`n` set) carry a small
/// policy, the probe API's first operation is `GET /ping`.
fn api(id: &str, backend_url: &str, n: Option<usize>) -> Value {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let operations: Vec<Value> = (0..OPERATIONS)
        .map(|o| {
            let (method, template) = if o == 0 && n.is_none() {
                ("GET", "/ping".to_owned())
            } else {
                (
                    METHODS[o % METHODS.len()],
                    format!("/resource-{}/{{id}}", o / METHODS.len()),
                )
            };
            json!({
                "id": format!("op-{o}"),
                "displayName": format!("Operation {o}"),
                "method": method,
                "urlTemplate": template,
            })
        })
        .collect();
    let mut api = json!({
        "id": id,
        "displayName": format!("API {id}"),
        "description": "Generated by the configuration sync benchmark.",
        "path": id,
        "serviceUrl": backend_url,
        "subscriptionRequired": false,
        "operations": operations,
    });
    if let Some(n) = n {
        api["policy"] = Value::String(format!(
            r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="1000" renewal-period="60" counter-key="@(context.Request.IpAddress)" />
    <set-header name="X-Api" exists-action="override"><value>api-{n}</value></set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#
        ));
    }
    api
}

/// A request body for the management API.
enum Body {
    None,
    Json(Value),
    Xml(String),
}

/// An HTTP client for the management API and the gateway (keep-alive, pooled).
#[derive(Clone)]
struct Client {
    http: Callouts,
    base: String,
}

impl Client {
    fn new(base: &str) -> anyhow::Result<Client> {
        let http = Callouts::new(None)?.with_limits(CalloutLimits {
            max_body_bytes: MAX_SNAPSHOT_BYTES,
            ..CalloutLimits::default()
        });
        Ok(Client {
            http,
            base: base.to_owned(),
        })
    }

    /// `GET url` with `headers`.
    async fn get(&self, url: &str, headers: &[(String, String)]) -> anyhow::Result<Response> {
        let request = CalloutRequest {
            method: "GET".into(),
            url: url.to_owned(),
            headers: headers.to_vec(),
            body: Bytes::new(),
            timeout: WAIT,
        };
        self.http
            .perform(request)
            .await
            .with_context(|| format!("GET {url}"))
    }

    /// A management API call as the admin; fails unless the answer is 2xx.
    async fn admin(&self, method: &str, path: &str, body: Body) -> anyhow::Result<Response> {
        let (content_type, body) = match body {
            Body::None => ("application/json", Bytes::new()),
            Body::Json(value) => ("application/json", Bytes::from(serde_json::to_vec(&value)?)),
            Body::Xml(xml) => ("application/xml", Bytes::from(xml)),
        };
        let request = CalloutRequest {
            method: method.to_owned(),
            url: format!("{}{path}", self.base),
            headers: vec![
                ("Authorization".into(), format!("Bearer {ADMIN_TOKEN}")),
                ("Content-Type".into(), content_type.into()),
            ],
            body,
            timeout: WAIT,
        };
        let response = self
            .http
            .perform(request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        if !(200..300).contains(&response.status) {
            bail!(
                "{method} {path}: {} {}",
                response.status,
                String::from_utf8_lossy(response.body.as_deref().unwrap_or_default())
            );
        }
        Ok(response)
    }
}

/// A backend that answers every request with `200 ok`, keeping connections open.
/// Requests are bodiless GETs: a request ends at its blank line.
async fn serve_backend(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(backend_connection(stream));
    }
}

async fn backend_connection(mut stream: TcpStream) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    let mut pending = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            if stream.write_all(ANSWER).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Order statistics of a set of durations (nearest rank).
struct Stats {
    median: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    n: usize,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |q: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[i]
        };
        Stats {
            median: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: sorted.last().copied().unwrap_or_default(),
            n: sorted.len(),
        }
    }

    /// A table row: median, p90, max, n.
    fn row(&self, name: &str) {
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(self.median),
            ms(self.p90),
            ms(self.max),
            self.n
        );
    }
}

/// Milliseconds with two decimals.
fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `1234567` as `1,234,567`.
fn group(n: usize) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        format!("{},{:03}", group(n / 1000), n % 1000)
    }
}
