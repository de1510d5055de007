//! `portcullis gateway --thread-per-core`: one current-thread tokio runtime per
//! worker thread, each accepting on its own `SO_REUSEPORT` listener of the
//! same address with its own backend pool, instead of one work-stealing
//! runtime. The first thread also runs everything else (configuration reload,
//! sync, telemetry, the operations and HTTPS listeners) and answers SIGHUP.

use anyhow::Context;
use portcullis_runtime_tokio::{Gateway, GatewayOptions, TokioRuntime};

use crate::{until_stopped, HupSignal, ShutdownSignal};

/// A current-thread runtime with IO and timers.
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs the gateway on `workers` threads until SIGTERM or SIGINT; SIGHUP
/// reloads.
pub(crate) fn run(mut options: GatewayOptions, workers: usize) -> anyhow::Result<()> {
    let workers = workers.max(1);
    options.reuse_port = workers > 1;
    let managed = matches!(
        options.origin,
        portcullis_driver::options::ConfigOrigin::Managed(_)
    );
    current_thread()?.block_on(async move {
        let signal = ShutdownSignal::install()?;
        let mut hup = HupSignal::install()?;
        let gateway = Gateway::start(options).await?;
        let mut threads = Vec::with_capacity(workers - 1);
        for n in 1..workers {
            let worker = gateway.worker();
            // The listener is bound on its own thread (it belongs to that
            // thread's runtime); start-up waits to hear it is, so a bind that
            // fails stops the gateway rather than leaving a thread short.
            let (bound_tx, bound_rx) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("portcullis-worker-{n}"))
                .spawn(move || -> anyhow::Result<u64> {
                    let runtime = current_thread()?;
                    runtime.block_on(async move {
                        match worker.bind(TokioRuntime).await {
                            Ok(bound) => {
                                let _ = bound_tx.send(Ok(()));
                                Ok(bound.serve().await)
                            }
                            Err(e) => {
                                let message = e.to_string();
                                let _ = bound_tx.send(Err(message.clone()));
                                Err(anyhow::anyhow!(message))
                            }
                        }
                    })
                })
                .context("starting a worker thread")?;
            match bound_rx.recv() {
                Ok(Ok(())) => threads.push(thread),
                Ok(Err(message)) => {
                    gateway.shutdown().await;
                    anyhow::bail!("worker thread {n}: {message}");
                }
                Err(_) => {
                    gateway.shutdown().await;
                    anyhow::bail!("worker thread {n} ended before listening");
                }
            }
        }
        tracing::info!(workers, "thread per core");
        until_stopped(signal, &mut hup, || gateway.reload(), managed).await;
        tracing::info!("shutting down: finishing requests in flight");
        gateway.shutdown().await;
        for thread in threads {
            match thread.join() {
                Ok(Ok(accepted)) => tracing::debug!(accepted, "worker thread stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "worker thread failed"),
                Err(_) => tracing::warn!("worker thread panicked"),
            }
        }
        tracing::info!("stopped");
        Ok(())
    })
}
