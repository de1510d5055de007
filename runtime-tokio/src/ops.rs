//! The operations listener: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use bytes::BytesMut;
use portcullis_core::http::HeadScanner;
use portcullis_core::ops::respond;
use portcullis_core::telemetry::Telemetry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config_file::SharedConfig;
use crate::env::{Listener, NetStream};

/// Serves the operations endpoints until `stop`.
pub(crate) async fn serve(
    listener: Box<dyn Listener>,
    config: Arc<SharedConfig>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let config = config.clone();
                let telemetry = telemetry.clone();
                tokio::spawn(async move {
                    let timeout = std::time::Duration::from_secs(10);
                    let _ =
                        tokio::time::timeout(timeout, answer(stream, &config, &telemetry)).await;
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "ops listener accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one request and closes; probes do not need keep-alive.
async fn answer(
    mut stream: NetStream,
    config: &SharedConfig,
    telemetry: &Telemetry,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut scan = HeadScanner::new();
    let out = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        if let Some(out) = respond(&mut buf, &mut scan, config.revision(), telemetry) {
            break out;
        }
    };
    stream.write_all(&out).await?;
    stream.shutdown().await
}
