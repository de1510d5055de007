//! The configuration in force, swapped atomically when a new one is applied.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use portcullis_core::config::CompiledConfig;
use portcullis_core::proxy::ConfigSource;

/// The configuration in force, swapped atomically on reload.
///
/// Requests keep the `Arc` they started with, so a reload never changes the
/// configuration under a request in flight.
#[derive(Default)]
pub struct SharedConfig {
    current: ArcSwapOption<CompiledConfig>,
    /// Told of every configuration put in force, right after the swap.
    hooks: std::sync::Mutex<Vec<ApplyHook>>,
}

/// What runs when a configuration is put in force.
pub type ApplyHook = Box<dyn Fn(&CompiledConfig) + Send + Sync>;

impl std::fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConfig")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl SharedConfig {
    /// A holder with this configuration (or none yet).
    pub fn new(config: Option<CompiledConfig>) -> Self {
        SharedConfig {
            current: ArcSwapOption::new(config.map(Arc::new)),
            hooks: Default::default(),
        }
    }

    /// Puts a new configuration in force.
    pub fn store(&self, config: CompiledConfig) {
        self.store_shared(Arc::new(config));
    }

    /// Puts a compiled configuration in force, as handed out by the sync agent.
    pub fn store_shared(&self, config: Arc<CompiledConfig>) {
        self.current.store(Some(config.clone()));
        for hook in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            hook(&config);
        }
    }

    /// Runs `hook` on every configuration put in force from now on (settings
    /// that must follow the configuration before its first request, such as
    /// the shared-state store).
    pub fn on_apply(&self, hook: ApplyHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
}

impl ConfigSource for SharedConfig {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        self.current.load_full()
    }
}
