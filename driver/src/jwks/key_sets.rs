//! Keeping `validate-jwt`'s OpenID key sets fresh, as both adapters' refresher
//! tasks do it: the options, one fetch (configuration, then key set) over the
//! adapter's [`CalloutClient`], and what a finished fetch means for the
//! [`RefreshSchedule`]. The adapter keeps the task, its timer and its channels.

use std::time::{Duration, Instant};

use portcullis_core::callout::{
    FetchedKeySet, KeySetFetch, KeySetStep, RefreshPolicy, RefreshSchedule,
};
use portcullis_core::policy::jwt::KeySetSink;

use crate::callout::client::CalloutClient;

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

/// How long a request waits for the refetch its token's unknown key started
/// (each request of the fetch; see [`refresh_for_unknown_key`]).
pub const UNKNOWN_KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches the configuration at `url`, then the key set it names.
pub async fn fetch_key_set<C: CalloutClient>(
    client: &C,
    url: &str,
    timeout: Duration,
) -> Result<FetchedKeySet, String> {
    let target = entra_target(url, client.entra_authority());
    let mut fetch = KeySetFetch::new(target.as_deref().unwrap_or(url), timeout);
    let mut request = fetch.start();
    for _ in 0..MAX_STEPS {
        let target = request.url.clone();
        let response = client
            .perform(request)
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        match fetch
            .handle_response(&response)
            .map_err(|e| format!("{target}: {e}"))?
        {
            KeySetStep::Fetch(next) => request = next,
            KeySetStep::Done(fetched) => return Ok(fetched),
        }
    }
    Err("too many steps".to_owned())
}

/// Where the configuration at `url` is fetched from when it is Entra ID's
/// and the gateway names another authority (a national cloud's proxy, or a
/// local identity provider in tests); the key set stays known by `url`.
fn entra_target(url: &str, authority: Option<&str>) -> Option<String> {
    let authority = authority?;
    let rest = url.strip_prefix(portcullis_core::policy::azure_ad::ENTRA_AUTHORITY)?;
    rest.starts_with('/').then(|| format!("{authority}{rest}"))
}

/// Logs that the refresher starts fetching `url`.
pub fn log_fetch_started(url: &str) {
    tracing::debug!(%url, "fetching OpenID key set");
}

/// Tells `schedule` how the fetch of `url` ended; the key set to hand on, if it
/// is still wanted (its source may have been dropped meanwhile).
pub fn handle_fetched(
    schedule: &mut RefreshSchedule,
    url: &str,
    result: Result<FetchedKeySet, String>,
    now: Instant,
) -> Option<FetchedKeySet> {
    match result {
        Ok(fetched) => {
            if schedule.handle_success(url, now) {
                tracing::info!(%url, bytes = fetched.jwks.len(), "OpenID key set refreshed");
                return Some(fetched);
            }
        }
        Err(error) => {
            if let Some(retry_in) = schedule.handle_failure(url, now) {
                tracing::warn!(%url, %error, ?retry_in, "OpenID key set fetch failed");
            }
        }
    }
    None
}

/// Hands a fetched issuer and key set to the policies' shared key store (the
/// gateway's refresher callback, and [`refresh_for_unknown_key`]).
pub fn store_key_set<K: KeySetSink + ?Sized>(keys: &K, url: &str, fetched: &FetchedKeySet) {
    if fetched.issuer.is_none() {
        // Without it only the policy's own <issuers> can accept a token.
        tracing::warn!(%url, "OpenID configuration has no issuer");
    }
    match keys.install_key_set(url, fetched.issuer.clone(), &fetched.jwks) {
        Ok(n) => {
            tracing::info!(%url, keys = n, issuer = ?fetched.issuer, "OpenID signing keys loaded")
        }
        Err(err) => tracing::warn!(%url, error = %err, "OpenID signing keys rejected"),
    }
}

/// Refetches the configurations a token's unknown key made `validate-jwt` ask
/// for (`Step::RefreshKeySets`, already throttled by the store's
/// [`KeySets::claim_refresh`](portcullis_core::policy::jwt::KeySets::claim_refresh)), and
/// installs what they give; the request then validates its token again. A
/// failed fetch leaves the key set as it was.
pub async fn refresh_for_unknown_key<C: CalloutClient, K: KeySetSink + ?Sized>(
    client: &C,
    keys: &K,
    urls: &[String],
) {
    for url in urls {
        tracing::info!(%url, "token names an unknown signing key: fetching the OpenID key set again");
        match fetch_key_set(client, url, UNKNOWN_KEY_FETCH_TIMEOUT).await {
            Ok(fetched) => store_key_set(keys, url, &fetched),
            Err(error) => tracing::warn!(%url, %error, "OpenID key set refetch failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entra_target;

    #[test]
    fn entra_configurations_go_to_the_configured_authority() {
        let url = "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration";
        assert_eq!(
            entra_target(url, Some("http://127.0.0.1:9000")).as_deref(),
            Some("http://127.0.0.1:9000/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration")
        );
        assert_eq!(entra_target(url, None), None);
        assert_eq!(
            entra_target(
                "https://login.microsoftonline.com.evil.test/x",
                Some("http://a")
            ),
            None
        );
        assert_eq!(
            entra_target(
                "https://idp.test/.well-known/openid-configuration",
                Some("http://a")
            ),
            None
        );
    }
}
