//! Keeps the key sets of `validate-jwt`'s `<openid-config url="...">` fresh: a
//! background task that fetches each OpenID configuration, then its `jwks_uri`,
//! and hands the key set to a callback. When and how is decided by the core's
//! `RefreshSchedule` and `KeySetFetch`; this module only performs the calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use portcullis_core::callout::{
    CalloutLimits, KeySetFetch, KeySetStep, RefreshPolicy, RefreshSchedule, MAX_DISCOVERY_DOCUMENT,
};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Task, Timer};

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
    current: Mutex<Vec<String>>,
    urls: Sender<Vec<String>>,
    _task: Task<()>,
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
        let (urls, rx) = smol::channel::unbounded();
        let task = smol::spawn(run(callouts, options, rx, Arc::new(on_keys)));
        JwksRefresher {
            current: Mutex::new(Vec::new()),
            urls,
            _task: task,
        }
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
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *current != urls {
            *current = urls.clone();
            let _ = self.urls.try_send(urls);
        }
    }
}

/// What woke the refresher.
enum Wake {
    Urls(Option<Vec<String>>),
    Fetched(String, Result<Bytes, String>),
    Due,
}

async fn run(
    callouts: Callouts,
    options: JwksOptions,
    urls: Receiver<Vec<String>>,
    on_keys: Arc<KeySetCallback>,
) {
    let mut schedule = RefreshSchedule::new(options.policy);
    let (done_tx, done_rx) = smol::channel::unbounded::<(String, Result<Bytes, String>)>();
    // Fetches in flight; dropped (cancelled) with this task.
    let mut fetches: Vec<Task<()>> = Vec::new();
    let mut timer = Timer::never();
    loop {
        fetches.retain(|t| !t.is_finished());
        while let Some(url) = schedule.poll_due(now()) {
            tracing::debug!(%url, "fetching OpenID key set");
            let (callouts, done_tx) = (callouts.clone(), done_tx.clone());
            let timeout = options.request_timeout;
            fetches.push(smol::spawn(async move {
                let result = std::panic::AssertUnwindSafe(fetch(callouts, url.clone(), timeout))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err("fetch task failed".to_owned()));
                let _ = done_tx.send((url, result)).await;
            }));
        }
        match schedule.poll_timeout() {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let wake = smol::future::or(
            async { Wake::Urls(urls.recv().await.ok()) },
            smol::future::or(
                async {
                    match done_rx.recv().await {
                        Ok((url, result)) => Wake::Fetched(url, result),
                        Err(_) => Wake::Due,
                    }
                },
                async {
                    (&mut timer).await;
                    Wake::Due
                },
            ),
        )
        .await;
        match wake {
            // The refresher was dropped.
            Wake::Urls(None) => return,
            Wake::Urls(Some(list)) => schedule.set_sources(list, now()),
            Wake::Fetched(url, Ok(jwks)) => {
                if schedule.handle_success(&url, now()) {
                    tracing::info!(%url, bytes = jwks.len(), "OpenID key set refreshed");
                    on_keys(&url, jwks);
                }
            }
            Wake::Fetched(url, Err(error)) => {
                if let Some(retry_in) = schedule.handle_failure(&url, now()) {
                    tracing::warn!(%url, %error, ?retry_in, "OpenID key set fetch failed");
                }
            }
            Wake::Due => {}
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
