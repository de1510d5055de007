//! Where a request goes: the API's backend or one a policy chose, and the
//! TLS settings (and so the pool) its connections use.

use std::sync::Arc;

use crate::config::{CompiledConfig, ServiceUrl};
use crate::http::UpstreamTls;
use crate::policy::auth_cert::BackendTlsChoice;

/// The backend of the request in progress.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub(super) config: Arc<CompiledConfig>,
    pub(super) api: usize,
    /// A backend a policy chose instead of the API's.
    pub(super) custom: Option<Arc<ServiceUrl>>,
    /// The TLS policies chose, with the pool key it gives; `None`: the API's.
    pub(super) custom_tls: Option<Arc<ChosenTls>>,
    /// A WebSocket handshake: the connection may become a tunnel.
    pub(super) tunnel: bool,
}

/// Backend TLS settings chosen by policies, and the pool key of the backend with them.
#[derive(Debug)]
pub(super) struct ChosenTls {
    tls: Option<Arc<UpstreamTls>>,
    pool_key: Arc<str>,
}

impl UpstreamTarget {
    /// Whether the request is a WebSocket handshake, whose connection becomes
    /// a tunnel on a `101` (counted against the gateway's limit of them).
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// Scheme, host, port and pool key of the backend.
    pub fn service(&self) -> &ServiceUrl {
        match &self.custom {
            Some(s) => s,
            None => self.config.upstream(self.api),
        }
    }

    /// How to make TLS to an `https://` backend: `None` for the defaults.
    pub fn tls(&self) -> Option<&Arc<UpstreamTls>> {
        match &self.custom_tls {
            Some(chosen) => chosen.tls.as_ref(),
            None if self.custom.is_some() => None,
            None => self.config.upstream_tls(self.api),
        }
    }

    /// The key of the pool its connections go to: the backend and the TLS
    /// settings, so a connection made with one setting (or client
    /// certificate) never serves a request needing another.
    pub fn pool_key(&self) -> &Arc<str> {
        match (&self.custom_tls, &self.custom) {
            (Some(chosen), _) => &chosen.pool_key,
            (None, Some(service)) => &service.pool_key,
            (None, None) => self.config.upstream_pool_key(self.api),
        }
    }

    /// Sets the TLS policies chose (`choice`) for the backend chosen.
    pub(super) fn choose_tls(&mut self, choice: &BackendTlsChoice) {
        self.custom_tls = if choice.is_default() && self.custom.is_none() {
            None
        } else {
            // A URL of a policy's own is not the API's backend entity: its
            // settings do not follow the request there.
            let api_tls = match self.custom {
                Some(_) => None,
                None => self.config.upstream_tls(self.api),
            };
            let tls = choice.resolve(api_tls);
            let pool_key = UpstreamTls::pool_key(tls.as_deref(), self.service());
            Some(Arc::new(ChosenTls { tls, pool_key }))
        };
    }
}
