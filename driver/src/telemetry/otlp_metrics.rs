//! Sends the custom metrics (`emit-metric`, `llm-emit-token-metric`) to the
//! OTLP collector (`--otlp-endpoint`, `{url}/v1/metrics`) every interval,
//! cumulative since the gateway started. What is sent is core's
//! (`telemetry::otlp_metrics`); a collector that is down loses nothing but
//! the export (the next one carries the totals), and is logged once until it
//! answers again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_core::telemetry::otlp_metrics;
use portcullis_core::telemetry::RecordSink;

use super::Hub;
use crate::callout::Callouts;
use crate::runtime::{sleep, until_stopped, Runtime};
use crate::stop::Stop;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

fn unix_nano(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Exports `hub`'s custom metrics to the collector at `url` every `every`,
/// until `stop`.
pub(crate) async fn export_loop<R: Runtime>(
    rt: R,
    hub: Arc<Hub>,
    callouts: Callouts<R>,
    url: String,
    every: Duration,
    stop: Stop,
) {
    let start = unix_nano(rt.wall_clock());
    let mut failing = false;
    loop {
        if until_stopped(&stop, sleep(&rt, every)).await.is_none() {
            return;
        }
        let settings = hub.settings();
        let Some(body) = otlp_metrics::encode(
            &hub.custom_metrics(),
            &settings.gateway,
            &settings.instance,
            start,
            unix_nano(rt.wall_clock()),
        ) else {
            continue;
        };
        let request = otlp_metrics::export_request(&url, body.into(), EXPORT_TIMEOUT);
        let outcome = match callouts.perform(request).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) => Err(format!("collector answered {}", r.status)),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(%url, "OTLP metrics export works again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%url, %error, "OTLP metrics export failed (retried every interval)");
            }
            Err(_) => {}
        }
    }
}
