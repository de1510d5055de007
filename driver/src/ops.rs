//! The operations listener: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::Hub;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use portcullis_core::http::HeadScanner;
use portcullis_core::ops_endpoints::respond;
use portcullis_core::telemetry::prometheus;

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
                    let work = answer(&task_rt, stream, &config, telemetry);
                    let _ = timeout(&task_rt, limit, work).await;
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
async fn answer<R: Runtime>(
    rt: &R,
    mut stream: R::Stream,
    config: &SharedConfig,
    telemetry: Arc<Hub>,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut scan = HeadScanner::new();
    let mut chunk = [0u8; 1024];
    let mut wants_metrics = false;
    let (out, revision) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let revision = config.revision();
        // The page is rendered below, off this thread: here it is only noted.
        if let Some(out) = respond(&mut buf, &mut scan, revision, || {
            wants_metrics = true;
            String::new()
        }) {
            break (out, revision);
        }
    };
    if wants_metrics {
        // Rendering a big page takes a while: on the blocking pool, not on a
        // thread that serves traffic.
        let chunks = rt
            .blocking(move || telemetry.render_metrics_chunks(revision))
            .await
            .map_err(std::io::Error::other)?;
        stream.write_all(&metrics_head(&chunks)).await?;
        for chunk in &chunks {
            stream.write_all(chunk.as_bytes()).await?;
        }
    } else {
        stream.write_all(&out).await?;
    }
    stream.flush().await?;
    stream.close().await
}

/// The head of a `/metrics` response whose body is `chunks`.
fn metrics_head(chunks: &[String]) -> Vec<u8> {
    let len: usize = chunks.iter().map(String::len).sum();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
        prometheus::CONTENT_TYPE
    )
    .into_bytes()
}
