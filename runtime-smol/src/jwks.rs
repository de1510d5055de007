//! Keeps the key sets of `validate-jwt`'s `<openid-config url="...">` fresh: a
//! background task that fetches each OpenID configuration, then its `jwks_uri`,
//! and hands the key set to a callback. When and how is decided by the core's
//! `RefreshSchedule` and `KeySetFetch`; this module only performs the calls.

use std::sync::{Arc, Mutex};

use portcullis_core::callout::{
    CalloutLimits, FetchedKeySet, RefreshSchedule, MAX_DISCOVERY_DOCUMENT,
};
pub use portcullis_driver::jwks::key_sets::JwksOptions;
use portcullis_driver::jwks::key_sets::{self, fetch_key_set};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Task, Timer};

use crate::callout::Callouts;
use crate::now;

/// What an OpenID configuration URL gave: `(config_url, issuer and key set)`.
pub type KeySetCallback = dyn Fn(&str, FetchedKeySet) + Send + Sync;

/// A running key set refresher; the task stops when this is dropped.
#[derive(Debug)]
pub struct JwksRefresher {
    current: Mutex<Vec<String>>,
    urls: Sender<Vec<String>>,
    _task: Task<()>,
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
    Fetched(String, Result<FetchedKeySet, String>),
    Due,
}

async fn run(
    callouts: Callouts,
    options: JwksOptions,
    urls: Receiver<Vec<String>>,
    on_keys: Arc<KeySetCallback>,
) {
    let mut schedule = RefreshSchedule::new(options.policy);
    let (done_tx, done_rx) = smol::channel::unbounded::<(String, Result<FetchedKeySet, String>)>();
    // Fetches in flight; dropped (cancelled) with this task.
    let mut fetches: Vec<Task<()>> = Vec::new();
    let mut timer = Timer::never();
    loop {
        fetches.retain(|t| !t.is_finished());
        while let Some(url) = schedule.poll_due(now()) {
            key_sets::log_fetch_started(&url);
            let (callouts, done_tx) = (callouts.clone(), done_tx.clone());
            let timeout = options.request_timeout;
            fetches.push(smol::spawn(async move {
                let result = std::panic::AssertUnwindSafe(fetch_key_set(&callouts, &url, timeout))
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
            Wake::Fetched(url, result) => {
                if let Some(fetched) = key_sets::handle_fetched(&mut schedule, &url, result, now())
                {
                    on_keys(&url, fetched);
                }
            }
            Wake::Due => {}
        }
    }
}
