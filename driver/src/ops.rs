//! The operations listener: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::Hub;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use portcullis_core::http::HeadScanner;
use portcullis_core::ops_endpoints::respond;

use crate::runtime::{sleep, timeout, until_stopped, Listener, Runtime};
use crate::shared_config::SharedConfig;
use crate::stop::Stop;

/// Serves the operations endpoints until `stop`.
pub(crate) async fn serve<R: Runtime>(
    rt: R,
    listener: R::Listener,
    config: Arc<SharedConfig>,
    telemetry: Arc<Hub>,
    stop: Stop,
) {
    loop {
        let Some(accepted) = until_stopped(&stop, listener.accept()).await else {
            return;
        };
        match accepted {
            Ok((stream, _)) => {
                let config = config.clone();
                let telemetry = telemetry.clone();
                let task_rt = rt.clone();
                rt.spawn(async move {
                    let limit = Duration::from_secs(10);
                    let _ = timeout(&task_rt, limit, answer(stream, &config, &telemetry)).await;
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "ops listener accept failed");
                sleep(&rt, Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one request and closes; probes do not need keep-alive.
async fn answer<S: crate::runtime::Stream>(
    mut stream: S,
    config: &SharedConfig,
    telemetry: &Hub,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut scan = HeadScanner::new();
    let mut chunk = [0u8; 1024];
    let out = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let revision = config.revision();
        if let Some(out) = respond(&mut buf, &mut scan, revision, || {
            telemetry.render_metrics(revision)
        }) {
            break out;
        }
    };
    stream.write_all(&out).await?;
    stream.flush().await?;
    stream.close().await
}
