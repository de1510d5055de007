//! The management plane's HTTP API: admin REST resources, the gateway sync and
//! telemetry endpoints, analytics, `/openapi.json` and `/healthz`.
//!
//! Handlers never run store calls on the runtime's workers: every call goes through
//! [`AppState::read`] or [`AppState::write`], which take the store's mutex on a
//! blocking thread. Writes publish the new revision on a watch channel that
//! long-polling configuration requests wait on. Telemetry and analytics go through
//! [`AppState::analytics`] instead: another file, another mutex.

mod analytics;
mod api_docs;
mod auth;
mod body;
pub(crate) mod clock;
mod conditional;
mod entities;
mod gateways;
mod hostnames;
pub mod openapi;
mod pagination;
mod policies;
pub mod problem;
mod revisions;
mod segments;
mod signing_key;
mod subscriptions;
mod sync;
mod token_renewal;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use crate::store::{AnalyticsStore, Store, StoreError};
pub use body::{MAX_BODY, MAX_HEARTBEAT_BYTES};
/// The largest telemetry batch accepted (core's limit for what a gateway uploads).
pub use portcullis_core::telemetry::batch::MAX_BATCH_BYTES as MAX_TELEMETRY_BYTES;
pub use problem::Problem;

/// Who the audit log names for changes made with the admin token.
const ADMIN_ACTOR: &str = "admin";

/// What every handler shares: the store, the revision channel and the settings.
pub struct AppState {
    store: Arc<Mutex<Store>>,
    /// Telemetry, apart from the configuration store: its own file and lock.
    analytics: Arc<Mutex<AnalyticsStore>>,
    revision: watch::Sender<u64>,
    shutdown: watch::Receiver<bool>,
    heartbeat_interval: Duration,
    max_wait: Duration,
    clock: fn() -> u64,
    inline: bool,
    /// Whether the management plane serves HTTPS (cookies are then always `Secure`).
    tls: bool,
    /// Failed portal sign-ins per email.
    pub(crate) sign_in_throttle: crate::web::throttle::Throttle,
    /// Refused gateway tokens: rate-limited log lines, the last per gateway.
    pub(crate) token_refusals: token_renewal::RefusalLog,
    /// Signs configuration snapshots; none in states built without one (tests).
    signing: Option<Arc<crate::signing::SigningKey>>,
}

impl AppState {
    /// Wraps an open store and analytics store. `shutdown` turning true ends
    /// long-polls (and the analytics prune) at once.
    pub fn new(
        store: Store,
        analytics: AnalyticsStore,
        shutdown: watch::Receiver<bool>,
        heartbeat_interval: Duration,
        max_wait: Duration,
    ) -> Self {
        let (revision, _) = watch::channel(store.revision());
        AppState {
            store: Arc::new(Mutex::new(store)),
            analytics: Arc::new(Mutex::new(analytics)),
            revision,
            shutdown,
            heartbeat_interval,
            max_wait,
            clock: clock::now_unix,
            inline: false,
            tls: false,
            sign_in_throttle: crate::web::throttle::Throttle::default(),
            token_refusals: token_renewal::RefusalLog::default(),
            signing: None,
        }
    }

    /// The same state, signing configuration snapshots with `key`.
    pub fn with_signing_key(mut self, key: Arc<crate::signing::SigningKey>) -> Self {
        self.signing = Some(key);
        self
    }

    /// The key configuration snapshots are signed with, if any.
    pub fn signing_key(&self) -> Option<&crate::signing::SigningKey> {
        self.signing.as_deref()
    }

    /// The same state with the wall clock and blocking policy of `env`.
    pub fn in_environment(mut self, env: &crate::Environment) -> Self {
        self.clock = env.clock;
        self.inline = env.inline_blocking;
        self
    }

    /// The same state, told whether it is served over TLS.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Whether the management plane serves HTTPS.
    pub fn serves_tls(&self) -> bool {
        self.tls
    }

    /// Now, in Unix seconds, on this state's wall clock.
    pub fn now_unix(&self) -> u64 {
        (self.clock)()
    }

    /// Now, in Unix milliseconds (whole seconds of this state's clock).
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.now_unix())
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    }

    /// The end of the current second, in Unix milliseconds: a range ending here
    /// holds everything up to now.
    pub fn now_ms_ceil(&self) -> i64 {
        self.now_ms().saturating_add(1000)
    }

    /// Runs `f` on a blocking thread, or inline in a simulation.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.inline {
            return Ok(f());
        }
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Problem::internal(&e))
    }

    /// The latest committed revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// A receiver that sees every committed revision.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Runs a read on a blocking thread with the store locked.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        self.blocking(move || {
            let guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&guard)
        })
        .await?
        .map_err(Problem::from)
    }

    /// Runs a write on a blocking thread with the store locked, then publishes the
    /// store's revision (before the lock is released, so readers never see a revision
    /// the channel has not announced).
    pub async fn write<T, F>(&self, f: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let revision = self.revision.clone();
        self.blocking(move || {
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            let result = f(&mut guard);
            let now = guard.revision();
            revision.send_if_modified(|current| {
                let newer = now > *current;
                if newer {
                    *current = now;
                }
                newer
            });
            result
        })
        .await?
        .map_err(Problem::from)
    }
}

impl AppState {
    /// Runs `f` on a blocking thread with the analytics store locked (never the
    /// configuration store: telemetry does not wait for, nor delay, configuration).
    pub async fn analytics<T, F>(&self, f: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnalyticsStore) -> Result<T, StoreError> + Send + 'static,
    {
        let analytics = Arc::clone(&self.analytics);
        self.blocking(move || {
            let mut guard = analytics.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await?
        .map_err(Problem::from)
    }
}

/// Shared state as handlers get it.
pub type Shared = Arc<AppState>;

/// Prunes analytics past the retention now and every hour, until shutdown.
pub async fn prune_analytics(state: Shared) {
    analytics::prune_periodically(state).await;
}

/// The whole API: public, gateway-token and admin routes, with the body limit and
/// problem+json for unknown routes and methods.
pub fn router(state: Shared) -> Router {
    let admin = Router::new()
        .merge(entities::routes())
        .merge(api_docs::routes())
        .merge(revisions::routes())
        .merge(subscriptions::routes())
        .merge(gateways::routes())
        .merge(hostnames::routes())
        .merge(policies::routes())
        .merge(analytics::admin_routes())
        .route("/revision", get(revision))
        .route("/audit", get(audit))
        // Inside the admin check: who is not the admin learns nothing from a 400.
        .route_layer(middleware::from_fn(segments::refuse_dot_segments))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_admin,
        ));
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/healthz", get(healthz))
        .merge(sync::routes())
        .merge(token_renewal::routes())
        .merge(signing_key::routes())
        .merge(analytics::gateway_routes())
        .merge(crate::admin_ui::routes())
        .merge(admin)
        .merge(crate::portal::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn revision(axum::extract::State(state): axum::extract::State<Shared>) -> Response {
    Json(serde_json::json!({ "revision": state.revision() })).into_response()
}

async fn audit(
    axum::extract::State(state): axum::extract::State<Shared>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, Problem> {
    let page = pagination::PageRequest::from_query(query.as_deref())?;
    let (entries, count) = state.read(move |s| s.audit(page.skip, page.top)).await?;
    let value = entries
        .into_iter()
        .map(|e| {
            let mut entry = serde_json::json!({
                "revision": e.revision,
                "at": clock::rfc3339(e.at_unix),
                "actor": e.actor,
                "action": e.action,
                "resource": e.resource,
            });
            if let Some(detail) = e.detail {
                entry["detail"] = serde_json::Value::String(detail);
            }
            entry
        })
        .collect();
    Ok(Json(pagination::Page::new("/audit", page, value, count)).into_response())
}

async fn no_route(req: Request) -> Problem {
    Problem::no_route(req.uri().path())
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::method_not_allowed(req.method().as_str(), req.uri().path())
}
