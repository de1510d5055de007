//! The configuration in force, swapped atomically when a new one is applied.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use portcullis_core::config::CompiledConfig;
use portcullis_core::proxy::ConfigSource;

/// The configuration in force, swapped atomically on reload.
///
/// Requests keep the `Arc` they started with, so a reload never changes the
/// configuration under a request in flight.
#[derive(Debug, Default)]
pub struct SharedConfig {
    current: ArcSwapOption<CompiledConfig>,
}

impl SharedConfig {
    /// A holder with this configuration (or none yet).
    pub fn new(config: Option<CompiledConfig>) -> Self {
        SharedConfig {
            current: ArcSwapOption::new(config.map(Arc::new)),
        }
    }

    /// Puts a new configuration in force.
    pub fn store(&self, config: CompiledConfig) {
        self.current.store(Some(Arc::new(config)));
    }

    /// Puts a compiled configuration in force, as handed out by the sync agent.
    pub fn store_shared(&self, config: Arc<CompiledConfig>) {
        self.current.store(Some(config));
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
