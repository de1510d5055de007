//! Keeps the key sets of `validate-jwt`'s `<openid-config url="...">` fresh: a
//! background task that fetches each OpenID configuration, then its `jwks_uri`,
//! and hands the key set to a callback. When and how is decided by the core's
//! `RefreshSchedule` and `KeySetFetch`; this module only performs the calls.

use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use futures_lite::FutureExt;
use portcullis_core::callout::{
    CalloutLimits, FetchedKeySet, RefreshSchedule, MAX_DISCOVERY_DOCUMENT,
};
use portcullis_core::machine::Machine;

use crate::callout::Callouts;
use crate::runtime::{sleep_until, Runtime};

pub mod key_sets;

use key_sets::fetch_key_set;
pub use key_sets::JwksOptions;

/// What an OpenID configuration URL gave: `(config_url, issuer and key set)`.
pub type KeySetCallback = dyn Fn(&str, FetchedKeySet) + Send + Sync;

/// A running key set refresher; the task stops when this is dropped.
#[derive(Debug)]
pub struct JwksRefresher {
    current: Mutex<Vec<String>>,
    urls: Sender<Vec<String>>,
}

impl JwksRefresher {
    /// Starts the refresher without sources; give them with
    /// [`set_urls`](Self::set_urls). `on_keys(config_url, fetched)` is called from
    /// the refresher's task after each successful fetch.
    pub fn spawn<R, F>(callouts: Callouts<R>, options: JwksOptions, on_keys: F) -> JwksRefresher
    where
        R: Runtime,
        F: Fn(&str, FetchedKeySet) + Send + Sync + 'static,
    {
        let callouts = callouts.with_limits(CalloutLimits {
            max_body_bytes: MAX_DISCOVERY_DOCUMENT,
            ..CalloutLimits::default()
        });
        let (urls, rx) = async_channel::unbounded();
        let rt = callouts.runtime().clone();
        rt.spawn(run(callouts, options, rx, Arc::new(on_keys)));
        JwksRefresher {
            current: Mutex::new(Vec::new()),
            urls,
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

async fn run<R: Runtime>(
    callouts: Callouts<R>,
    options: JwksOptions,
    urls: Receiver<Vec<String>>,
    on_keys: Arc<KeySetCallback>,
) {
    let rt = callouts.runtime().clone();
    let mut schedule = RefreshSchedule::new(options.policy);
    let (done_tx, done_rx) = async_channel::unbounded::<(String, Result<FetchedKeySet, String>)>();
    loop {
        schedule.handle_timeout(rt.now());
        while let Some(url) = schedule.poll_output() {
            key_sets::log_fetch_started(&url);
            let (callouts, done_tx) = (callouts.clone(), done_tx.clone());
            let timeout = options.request_timeout;
            rt.spawn(async move {
                let result = std::panic::AssertUnwindSafe(fetch_key_set(&callouts, &url, timeout))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err("fetch task failed".to_owned()));
                let _ = done_tx.send((url, result)).await;
            });
        }
        let deadline = schedule.poll_timeout();
        let wake = futures_lite::future::or(
            async { Wake::Urls(urls.recv().await.ok()) },
            futures_lite::future::or(
                async {
                    match done_rx.recv().await {
                        Ok((url, result)) => Wake::Fetched(url, result),
                        Err(_) => Wake::Due,
                    }
                },
                async {
                    sleep_until(&rt, deadline).await;
                    Wake::Due
                },
            ),
        )
        .await;
        match wake {
            // The refresher was dropped.
            Wake::Urls(None) => return,
            Wake::Urls(Some(list)) => schedule.set_sources(list, rt.now()),
            Wake::Fetched(url, result) => {
                if let Some(fetched) =
                    key_sets::handle_fetched(&mut schedule, &url, result, rt.now())
                {
                    on_keys(&url, fetched);
                }
            }
            Wake::Due => {}
        }
    }
}
