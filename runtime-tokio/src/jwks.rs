//! Keeps the key sets of `validate-jwt`'s `<openid-config url="...">` fresh: a
//! background task that fetches each OpenID configuration, then its `jwks_uri`,
//! and hands the key set to a callback. When and how is decided by the core's
//! `RefreshSchedule` and `KeySetFetch`; this module only performs the calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::callout::{
    CalloutLimits, FetchedKeySet, RefreshSchedule, MAX_DISCOVERY_DOCUMENT,
};
pub use portcullis_driver::jwks::key_sets::JwksOptions;
use portcullis_driver::jwks::key_sets::{self, fetch_key_set};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::callout::Callouts;
use crate::now;

/// What an OpenID configuration URL gave: `(config_url, issuer and key set)`.
pub type KeySetCallback = dyn Fn(&str, FetchedKeySet) + Send + Sync;

/// A running key set refresher; the task stops when this is dropped.
#[derive(Debug)]
pub struct JwksRefresher {
    urls: watch::Sender<Vec<String>>,
    task: JoinHandle<()>,
}

impl JwksRefresher {
    /// Starts the refresher without sources; give them with
    /// [`set_urls`](Self::set_urls). `on_keys(config_url, fetched)` is called from
    /// the refresher's task after each successful fetch.
    pub fn spawn<F>(callouts: Callouts, options: JwksOptions, on_keys: F) -> JwksRefresher
    where
        F: Fn(&str, FetchedKeySet) + Send + Sync + 'static,
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
    let mut fetches: JoinSet<Result<FetchedKeySet, String>> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    loop {
        while let Some(url) = schedule.poll_due(now()) {
            key_sets::log_fetch_started(&url);
            let (callouts, target) = (callouts.clone(), url.clone());
            let timeout = options.request_timeout;
            let handle =
                fetches.spawn(async move { fetch_key_set(&callouts, &target, timeout).await });
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
                if let Some(fetched) = key_sets::handle_fetched(&mut schedule, &url, result, now()) {
                    on_keys(&url, fetched);
                }
            }
            _ = &mut sleep, if wake.is_some() => {}
        }
    }
}
