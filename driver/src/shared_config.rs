//! The configuration in force, swapped atomically when a new one is applied,
//! and the ones it replaced, kept until they can be freed off the request path.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use portcullis_core::config::CompiledConfig;
use portcullis_core::proxy::ConfigSource;

use crate::runtime::{sleep, until_stopped, Runtime};
use crate::stop::Stop;

/// The configuration in force, swapped atomically on reload.
///
/// Requests keep the `Arc` they started with, so a reload never changes the
/// configuration under a request in flight. A replaced configuration is kept
/// here ("retired") until nobody else holds it, then freed by
/// [`free_retired`] as blocking work: freeing 10,000 APIs takes tens of
/// milliseconds, which the request task that happened to drop the last
/// reference would otherwise spend instead of serving.
pub struct SharedConfig {
    current: ArcSwapOption<CompiledConfig>,
    /// Told of every configuration put in force, right after the swap.
    hooks: Mutex<Vec<ApplyHook>>,
    /// Configurations replaced and not freed yet.
    retired: Mutex<Vec<Arc<CompiledConfig>>>,
    /// Wakes [`free_retired`] when a configuration is retired.
    retired_tx: async_channel::Sender<()>,
    retired_rx: async_channel::Receiver<()>,
}

/// What runs when a configuration is put in force.
pub type ApplyHook = Box<dyn Fn(&CompiledConfig) + Send + Sync>;

impl std::fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConfig")
            .field("revision", &self.revision())
            .field("retired", &self.retired_count())
            .finish_non_exhaustive()
    }
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig::new(None)
    }
}

impl SharedConfig {
    /// A holder with this configuration (or none yet).
    pub fn new(config: Option<CompiledConfig>) -> Self {
        let (retired_tx, retired_rx) = async_channel::bounded(1);
        SharedConfig {
            current: ArcSwapOption::new(config.map(Arc::new)),
            hooks: Default::default(),
            retired: Default::default(),
            retired_tx,
            retired_rx,
        }
    }

    /// Puts a new configuration in force.
    pub fn store(&self, config: CompiledConfig) {
        self.store_shared(Arc::new(config));
    }

    /// Puts a compiled configuration in force, as handed out by the sync agent.
    pub fn store_shared(&self, config: Arc<CompiledConfig>) {
        let old = self.current.swap(Some(config.clone()));
        for hook in self
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            hook(&config);
        }
        if let Some(old) = old {
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(old);
            // Full: a wake-up is already pending.
            let _ = self.retired_tx.try_send(());
        }
    }

    /// Runs `hook` on every configuration put in force from now on (settings
    /// that must follow the configuration before its first request, such as
    /// the shared-state store).
    pub fn on_apply(&self, hook: ApplyHook) {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// Whether a configuration is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// The revision in force, if any.
    pub fn revision(&self) -> Option<u64> {
        self.current.load().as_ref().map(|c| c.revision())
    }

    /// The content identity (revision, store, digest) of the configuration in force.
    pub fn content(&self) -> Option<portcullis_core::sync::ContentId> {
        self.current
            .load()
            .as_ref()
            .map(|c| portcullis_core::sync::ContentId::of(c.snapshot()))
    }

    /// How many replaced configurations are not freed yet.
    pub fn retired_count(&self) -> usize {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes out the replaced configurations nobody else holds any more (the
    /// caller frees them); the others stay until their last request is done.
    pub fn take_unused(&self) -> Vec<Arc<CompiledConfig>> {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let (unused, held): (Vec<_>, Vec<_>) =
            retired.drain(..).partition(|c| Arc::strong_count(c) == 1);
        *retired = held;
        unused
    }
}

impl ConfigSource for SharedConfig {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        self.current.load_full()
    }
}

/// How often [`free_retired`] looks again at configurations still held by
/// requests in flight.
const RETIRED_RECHECK: Duration = Duration::from_millis(200);

/// Frees the configurations `shared` replaced, as blocking work, once no
/// request holds them any more; runs until `stop`.
pub(crate) async fn free_retired<R: Runtime>(rt: R, shared: Arc<SharedConfig>, stop: Stop) {
    let wake = shared.retired_rx.clone();
    loop {
        if shared.retired_count() == 0 {
            // `shared` holds the sender: this ends only on stop.
            if until_stopped(&stop, wake.recv()).await.is_none() {
                break;
            }
        } else if until_stopped(&stop, sleep(&rt, RETIRED_RECHECK))
            .await
            .is_none()
        {
            break;
        }
        let unused = shared.take_unused();
        if !unused.is_empty() {
            let _ = rt.blocking(move || drop(unused)).await;
        }
    }
    // Shutting down: whatever is left is freed with the gateway.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(revision: u64) -> CompiledConfig {
        let json = format!(r#"{{"revision": {revision}}}"#);
        portcullis_core::config::reload::compile_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_replaced_configuration_is_kept_until_no_request_holds_it() {
        let shared = SharedConfig::new(Some(config(1)));
        let in_flight = shared.current().unwrap();
        shared.store(config(2));
        assert_eq!(shared.revision(), Some(2));
        assert_eq!(shared.retired_count(), 1);
        // A request still holds revision 1: it is not handed out for freeing.
        assert!(shared.take_unused().is_empty());
        assert_eq!(shared.retired_count(), 1);
        drop(in_flight);
        let unused = shared.take_unused();
        assert_eq!(unused.len(), 1);
        assert_eq!(unused[0].revision(), 1);
        assert_eq!(shared.retired_count(), 0);
    }
}
