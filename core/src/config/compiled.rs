//! A snapshot compiled for serving: validated, upstreams parsed, router built.

use std::collections::HashMap;

use super::{validate, Api, ConfigError, Operation, ServiceUrl, Snapshot, SubscriptionState};
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
    keys: KeyIndex,
    router: Router,
}

/// Where a subscription key leads: the subscription and the API it is scoped to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscriptionRef {
    /// Index in `Snapshot::subscriptions`.
    pub(crate) index: usize,
    /// The one API the subscription opens, or `None` for all.
    pub(crate) scope: Option<usize>,
}

/// Subscriptions by key; its `Debug` does not print the keys.
pub(crate) struct KeyIndex(pub(crate) HashMap<Box<str>, SubscriptionRef>);

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyIndex({} keys)", self.0.len())
    }
}

/// The outcome of checking a subscription key against an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key belongs to this active subscription (index in `Snapshot::subscriptions`),
    /// which opens the API.
    Valid {
        /// Index of the subscription.
        subscription: usize,
    },
    /// Unknown key, inactive subscription, or a scope that does not include the API.
    Invalid,
}

impl CompiledConfig {
    /// Validates `snapshot`, resolves every API's upstream and builds the router.
    pub fn compile(snapshot: Snapshot) -> Result<CompiledConfig, ConfigError> {
        let checked = validate::check(&snapshot)?;
        Ok(CompiledConfig {
            snapshot,
            upstreams: checked.upstreams,
            keys: KeyIndex(checked.keys),
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

    /// Whether `key` opens API `api_idx`.
    pub fn check_key(&self, api_idx: usize, key: &[u8]) -> KeyCheck {
        let Some(found) = std::str::from_utf8(key)
            .ok()
            .and_then(|k| self.keys.0.get(k))
        else {
            return KeyCheck::Invalid;
        };
        let active = self.snapshot.subscriptions[found.index].state == SubscriptionState::Active;
        let in_scope = found.scope.is_none_or(|api| api == api_idx);
        if active && in_scope {
            KeyCheck::Valid {
                subscription: found.index,
            }
        } else {
            KeyCheck::Invalid
        }
    }

    /// The router over this snapshot's APIs.
    pub fn router(&self) -> &Router {
        &self.router
    }
}
