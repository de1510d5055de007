//! Keeps the key sets of `validate-jwt`'s `<openid-config url="...">` fresh: a
//! background task that fetches each OpenID configuration, then its `jwks_uri`,
//! and hands the key set to a callback. When and how is decided by the core's
//! `RefreshSchedule` and `KeySetFetch`; this module only performs the calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_core::callout::{
    CalloutLimits, KeySetFetch, KeySetStep, RefreshPolicy, RefreshSchedule, MAX_DISCOVERY_DOCUMENT,
};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::callout::Callouts;
use crate::now;

/// Most requests one key set fetch makes (configuration, key set).
const MAX_STEPS: usize = 2;

/// How the refresher fetches and refetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksOptions {
    /// Refresh interval and failure backoff (default: every hour; 1 s doubling to 5 min).
    pub policy: RefreshPolicy,
    /// Timeout of each request.
    pub request_timeout: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            policy: RefreshPolicy::default(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A key set fetched for an OpenID configuration URL: `(config_url, jwks_json)`.
pub type KeySetCallback = dyn Fn(&str, Bytes) + Send + Sync;

/// A running key set refresher; the task stops when this is dropped.
#[derive(Debug)]
pub struct JwksRefresher {
    urls: watch::Sender<Vec<String>>,
    task: JoinHandle<()>,
}

impl JwksRefresher {
    /// Starts the refresher without sources; give them with
    /// [`set_urls`](Self::set_urls). `on_keys(config_url, jwks_json)` is called from
    /// the refresher's task after each successful fetch.
    pub fn spawn<F>(callouts: Callouts, options: JwksOptions, on_keys: F) -> JwksRefresher
    where
        F: Fn(&str, Bytes) + Send + Sync + 'static,
    {
        let callouts = callouts.with_limits(CalloutLimits {
            max_body_bytes: MAX_DISCOVERY_DOCUMENT,
            ..CalloutLimits::default()
        });
        let (urls, rx) = watch::channel(Vec::new());
        let task = tokio::spawn(run(callouts, options, rx, Arc::new(on_keys)));
        JwksRefresher { urls, task }
    }

    /// Sets the OpenID configuration URLs to keep fresh (from the compiled
    /// configuration, on each change): new ones are fetched at once, known ones
    /// keep their schedule, others are dropped.
    pub fn set_urls<I, S>(&self, urls: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        self.urls.send_if_modified(|current| {
            if *current == urls {
                false
            } else {
                *current = urls;
                true
            }
        });
    }
}

impl Drop for JwksRefresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    callouts: Callouts,
    options: JwksOptions,
    mut urls: watch::Receiver<Vec<String>>,
    on_keys: Arc<KeySetCallback>,
) {
    let mut schedule = RefreshSchedule::new(options.policy);
    let mut fetches: JoinSet<Result<Bytes, String>> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    loop {
        while let Some(url) = schedule.poll_due(now()) {
            tracing::debug!(%url, "fetching OpenID key set");
            let handle = fetches.spawn(fetch(
                callouts.clone(),
                url.clone(),
                options.request_timeout,
            ));
            in_flight.insert(handle.id(), url);
        }
        let wake = schedule.poll_timeout().map(tokio::time::Instant::from_std);
        if let Some(wake) = wake {
            sleep.as_mut().reset(wake);
        }
        tokio::select! {
            changed = urls.changed() => {
                if changed.is_err() {
                    // The refresher was dropped.
                    return;
                }
                let list = urls.borrow_and_update().clone();
                schedule.set_sources(list, now());
            }
            Some(joined) = fetches.join_next_with_id(), if !fetches.is_empty() => {
                let (id, result) = match joined {
                    Ok((id, result)) => (id, result),
                    Err(err) => (err.id(), Err(format!("fetch task failed: {err}"))),
                };
                let Some(url) = in_flight.remove(&id) else { continue };
                match result {
                    Ok(jwks) => {
                        if schedule.handle_success(&url, now()) {
                            tracing::info!(%url, bytes = jwks.len(), "OpenID key set refreshed");
                            on_keys(&url, jwks);
                        }
                    }
                    Err(error) => {
                        if let Some(retry_in) = schedule.handle_failure(&url, now()) {
                            tracing::warn!(%url, %error, ?retry_in, "OpenID key set fetch failed");
                        }
                    }
                }
            }
            _ = &mut sleep, if wake.is_some() => {}
        }
    }
}

/// Fetches the configuration at `url`, then the key set it names.
async fn fetch(callouts: Callouts, url: String, timeout: Duration) -> Result<Bytes, String> {
    let mut fetch = KeySetFetch::new(&url, timeout);
    let mut request = fetch.start();
    for _ in 0..MAX_STEPS {
        let target = request.url.clone();
        let response = callouts
            .perform(request)
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        match fetch
            .handle_response(&response)
            .map_err(|e| format!("{target}: {e}"))?
        {
            KeySetStep::Fetch(next) => request = next,
            KeySetStep::Done(jwks) => return Ok(jwks),
        }
    }
    Err("too many steps".to_owned())
}
