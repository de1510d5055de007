//! The shared-limits scenario's hosts: gateways started from one
//! configuration file (a `rate-limit-by-key` API) with their store on the
//! Redis stand-in, and one client per gateway hammering it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::store::StoreSettings;
use portcullis_driver::api::GatewayOptions;
use portcullis_driver::{Gateway, Sabotage};
use serde_json::json;

use crate::faults::Rng;
use crate::hosts::redis::{REDIS, REDIS_PORT};
use crate::hosts::traffic::{BODY, CLIENT_TIMEOUT};
use crate::hosts::{gateway_host, http, SimNet, BACKEND, BACKEND_PORT, GATEWAY_PORT};
use crate::runtime::SimRuntime;
use crate::trace::{sim_ms, Event, Trace};

/// The API's path.
pub const API_PATH: &str = "lim";
/// The response header carrying the calls left.
pub const REMAINING_HEADER: &str = "x-remaining";
/// Every replica runs as this one gateway: replicas of one gateway share
/// their counters (the store's key prefix is per gateway id).
pub const GATEWAY_ID: &str = "sim-shared";

/// The Redis URL of the gateways' store.
pub fn redis_url() -> String {
    format!("redis://{REDIS}:{REDIS_PORT}/0")
}

/// The configuration file: one API whose operation is limited per counter
/// key (the path's `{key}`) to `calls` calls per `period_secs`, announcing the
/// calls left in `X-Remaining`, and the store when it comes from the
/// configuration (as it does from the management plane's snapshot).
pub fn config(calls: u64, period_secs: u64, store: Option<&StoreSettings>) -> serde_json::Value {
    let policy = format!(
        "<policies><inbound><base />\
         <rate-limit-by-key calls=\"{calls}\" renewal-period=\"{period_secs}\" \
         counter-key=\"@(context.Request.MatchedParameters[&quot;key&quot;])\" \
         remaining-calls-header-name=\"X-Remaining\" />\
         </inbound><backend><base /></backend><outbound><base /></outbound>\
         <on-error><base /></on-error></policies>"
    );
    let mut config = json!({
        "revision": 1,
        "apis": [{
            "id": API_PATH,
            "displayName": "Limited API",
            "path": API_PATH,
            "serviceUrl": format!("http://{BACKEND}:{BACKEND_PORT}"),
            "protocols": ["http"],
            "subscriptionRequired": false,
            "operations": [{
                "id": "hit",
                "displayName": "Hit",
                "method": "GET",
                "urlTemplate": "/hit/{key}/{id}"
            }],
            "policy": policy
        }]
    });
    if let Some(store) = store {
        config["store"] = json!(store);
    }
    config
}

/// What a gateway host needs across its restarts.
#[derive(Debug)]
pub struct LimitsGateway {
    pub gw: usize,
    /// The configuration file (a real file: read, never changed).
    pub config: PathBuf,
    /// The store from the gateway's own flag (`--store...`), if not from
    /// the file.
    pub store_flag: Option<StoreSettings>,
    pub seed: u64,
    pub net: SimNet,
    pub starts: AtomicU64,
}

/// Runs gateway `host.gw` until the host crashes.
pub async fn gateway(host: Arc<LimitsGateway>) -> turmoil::Result {
    let n = host.starts.fetch_add(1, Ordering::Relaxed);
    let mut options = GatewayOptions::new(host.config.clone());
    options.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), GATEWAY_PORT);
    options.ops_listen = None;
    options.gateway_id = GATEWAY_ID.into();
    options.telemetry.upload = false;
    options.store = host.store_flag.clone();
    let seed = host
        .seed
        .wrapping_mul(37)
        .wrapping_add(host.gw as u64 * 1_000 + n);
    let rt = SimRuntime::new(host.net.clone(), seed, Sabotage::default());
    let _gateway = Gateway::start_on(options, rt).await?;
    std::future::pending::<()>().await;
    Ok(())
}

/// When the clients start (the gateways have loaded their file by then).
pub const CLIENTS_START: Duration = Duration::from_secs(2);

/// The client of gateway `gw`: a request every 50 to 400 ms, each for one of
/// `keys` counter keys, every answer recorded.
pub async fn client(gw: usize, keys: usize, seed: u64, trace: Trace) -> turmoil::Result {
    let mut rng = Rng::new(seed.wrapping_add(0x1000 * (gw as u64 + 1)));
    let host = gateway_host(gw);
    tokio::time::sleep(CLIENTS_START).await;
    for n in 0.. {
        tokio::time::sleep(Duration::from_millis(rng.range(50, 400))).await;
        let key = rng.range(0, keys as u64 - 1) as usize;
        let path = format!("/{API_PATH}/hit/k{key}/c{gw}-{n}");
        let sent_ms = sim_ms();
        let answer = tokio::time::timeout(
            CLIENT_TIMEOUT,
            http(&host, GATEWAY_PORT, "GET", &path, &[], b""),
        )
        .await;
        let (status, remaining) = match answer {
            Ok(Ok((status, headers, body))) => {
                let remaining = headers
                    .iter()
                    .find(|(n, _)| n == REMAINING_HEADER)
                    .and_then(|(_, v)| v.parse().ok());
                // A 200 is the backend's answer, or it is no 200 at all.
                let status = if status == 200 && body != BODY {
                    599
                } else {
                    status
                };
                (Some(status), remaining)
            }
            Ok(Err(_)) | Err(_) => (None, None),
        };
        trace.now(Event::LimitAnswer {
            gw,
            key,
            n,
            sent_ms,
            status,
            remaining,
        });
    }
    Ok(())
}
