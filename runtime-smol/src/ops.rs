//! The operations listener: `/healthz`, `/readyz` and `/metrics`.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use portcullis_core::http::HeadScanner;
use portcullis_core::ops::respond;
use portcullis_core::telemetry::Telemetry;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Async;

use crate::config_file::SharedConfig;
use crate::stop::Stop;

/// Serves the operations endpoints until `stop`.
pub(crate) async fn serve(
    listener: Async<TcpListener>,
    config: Arc<SharedConfig>,
    telemetry: Arc<Telemetry>,
    stop: Stop,
) {
    loop {
        let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
            stop.cancelled().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, _))) => {
                let config = config.clone();
                let telemetry = telemetry.clone();
                smol::spawn(async move {
                    let _ = crate::timeout(
                        Duration::from_secs(10),
                        answer(stream, &config, &telemetry),
                    )
                    .await;
                })
                .detach();
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "ops listener accept failed");
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one request and closes; probes do not need keep-alive.
async fn answer(
    mut stream: Async<TcpStream>,
    config: &SharedConfig,
    telemetry: &Telemetry,
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
        if let Some(out) = respond(&mut buf, &mut scan, config.revision(), telemetry) {
            break out;
        }
    };
    stream.write_all(&out).await?;
    stream.flush().await?;
    stream.get_ref().shutdown(Shutdown::Write)
}
