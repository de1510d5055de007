//! The management plane host: the real `portcullis-management` service on
//! turmoil's network, its SQLite database on a real temporary directory (SQLite's
//! own IO does not go through the simulated disk; it survives a crash as a file
//! would).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use portcullis_management::store::{
    seed_random_on_this_thread, KeyType, Kind, PolicyScope, Precondition, Store,
};
use portcullis_management::{Environment, Management, ManagementOptions};
use serde_json::json;

use super::{unix_now, AxumListener, BACKEND, BACKEND_PORT, EPOCH_UNIX, MANAGEMENT_PORT};
use crate::trace::{Event, Trace};

/// The admin token of the simulated management plane.
pub const ADMIN_TOKEN: &str = "sim-admin-token-0123456789abcdef";
/// The API every gateway serves, and its path.
pub const API_ID: &str = "svc";

/// The policy document of the API at revision `rev`: every answer carries the
/// revision in `X-Rev`, so clients see which configuration served them.
pub fn policy(rev: u64) -> String {
    format!(
        "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base />\
         <set-header name=\"X-Rev\" exists-action=\"override\"><value>{rev}</value></set-header>\
         </outbound><on-error><base /></on-error></policies>"
    )
}

/// Puts the initial configuration in the store at `dir` (one API on the backend,
/// two gateways serving it, the policy) and returns the gateways' tokens.
pub fn setup(dir: &Path, seed: u64) -> Result<Vec<String>, String> {
    seed_random_on_this_thread(Some(seed));
    let now = EPOCH_UNIX;
    let mut store = Store::open(dir).map_err(|e| e.to_string())?;
    let api = json!({
        "displayName": "Simulated API",
        "path": API_ID,
        "serviceUrl": format!("http://{BACKEND}:{BACKEND_PORT}"),
        "protocols": ["http"],
        "subscriptionRequired": false,
        "operations": [
            { "id": "hello", "displayName": "Hello", "method": "GET", "urlTemplate": "/hello/{id}" }
        ]
    });
    store
        .put(Kind::Api, API_ID, api, Precondition::NONE, "sim", now)
        .map_err(|e| e.to_string())?;
    let mut tokens = Vec::new();
    for gw in 0..2 {
        let id = super::gateway_host(gw);
        let body = json!({ "location": { "name": id }, "apis": [API_ID] });
        store
            .put(Kind::Gateway, &id, body, Precondition::NONE, "sim", now)
            .map_err(|e| e.to_string())?;
        let token = store
            .gateway_token(&id, KeyType::Primary, None, now)
            .map_err(|e| e.to_string())?;
        tokens.push(token.value);
    }
    let rev = store.revision() + 1;
    store
        .put_policy(
            &PolicyScope::Api(API_ID.into()),
            &policy(rev),
            Precondition::NONE,
            "sim",
            now,
        )
        .map_err(|e| e.to_string())?;
    seed_random_on_this_thread(None);
    Ok(tokens)
}

/// What the store holds after the run.
#[derive(Debug, Clone)]
pub struct FinalState {
    /// The store's revision.
    pub revision: u64,
    /// Each gateway's last heartbeat (Unix seconds).
    pub beats: Vec<Option<u64>>,
    /// The digest of the content the store would send each gateway now.
    pub digests: Vec<Option<String>>,
}

/// The store's final revision, each gateway's last heartbeat and the digest of
/// its current content, read after the run.
pub fn final_state(dir: &Path) -> Result<FinalState, String> {
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    let mut beats = Vec::new();
    let mut digests = Vec::new();
    for gw in 0..2 {
        let config = store
            .gateway_config(&super::gateway_host(gw))
            .map_err(|e| e.to_string())?;
        digests.push(config.id.digest);
        let status = store
            .gateway_status(&super::gateway_host(gw), EPOCH_UNIX)
            .map_err(|e| e.to_string())?;
        beats.push(status.instances.iter().map(|i| i.last_heartbeat_unix).max());
    }
    Ok(FinalState {
        revision: store.revision(),
        beats,
        digests,
    })
}

/// Runs the management plane until the host crashes.
pub async fn serve(data_dir: PathBuf, seed: u64, trace: Trace) -> turmoil::Result {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), MANAGEMENT_PORT);
    let listener = turmoil::net::TcpListener::bind(addr).await?;
    let mut options = ManagementOptions::new(addr, data_dir);
    options.admin_token = Some(ADMIN_TOKEN.into());
    let env = Environment {
        clock: unix_now,
        inline_blocking: true,
        seed: Some(seed),
    };
    let management = Management::start_on(AxumListener(listener), options, env).await?;
    trace.now(Event::ManagementStarted);
    std::future::pending::<()>().await;
    drop(management);
    Ok(())
}
