//! A snapshot compiled for serving: validated, upstreams parsed, router built.

use super::{validate, Api, ConfigError, Operation, ServiceUrl, Snapshot};
use crate::router::Router;

/// Everything derived from one snapshot that requests need; built once, then read-only.
///
/// API and operation indices in route matches refer to this snapshot, so a request
/// must keep using the `CompiledConfig` it was routed with (the adapters hold it in
/// an `Arc` and swap in a new one atomically).
#[derive(Debug)]
pub struct CompiledConfig {
    snapshot: Snapshot,
    upstreams: Vec<ServiceUrl>,
    router: Router,
}

impl CompiledConfig {
    /// Validates `snapshot`, resolves every API's upstream and builds the router.
    pub fn compile(snapshot: Snapshot) -> Result<CompiledConfig, ConfigError> {
        let checked = validate::check(&snapshot)?;
        Ok(CompiledConfig {
            snapshot,
            upstreams: checked.upstreams,
            router: checked.router,
        })
    }

    /// The snapshot's revision.
    pub fn revision(&self) -> u64 {
        self.snapshot.revision
    }

    /// The snapshot this was compiled from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The API at `idx` (`RouteMatch::api as usize`).
    ///
    /// # Panics
    /// If `idx` does not come from this configuration's router.
    pub fn api(&self, idx: usize) -> &Api {
        &self.snapshot.apis[idx]
    }

    /// Operation `op` of API `api` (from `RouteMatch::api` and `RouteMatch::operation`).
    ///
    /// # Panics
    /// If the indices do not come from this configuration's router.
    pub fn operation(&self, api: usize, op: usize) -> &Operation {
        &self.api(api).operations[op]
    }

    /// The upstream of API `api_idx`: its `serviceUrl`, or its backend's URL.
    ///
    /// # Panics
    /// If `api_idx` does not come from this configuration's router.
    pub fn upstream(&self, api_idx: usize) -> &ServiceUrl {
        &self.upstreams[api_idx]
    }

    /// The router over this snapshot's APIs.
    pub fn router(&self) -> &Router {
        &self.router
    }
}
