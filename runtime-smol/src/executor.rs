//! The executor the gateway's tasks run on: one of its own rather than smol's
//! global one, so that the thread driving async-io's reactor can run it too
//! ([`block_on`]) and wake-ups for tasks woken by I/O stay on that thread.

use std::future::Future;
use std::sync::Once;

use smol::Executor;

/// The gateway's tasks ([`crate::SmolRuntime::spawn`]).
static EXECUTOR: Executor<'static> = Executor::new();

/// Starts the background executor threads, once.
static THREADS: Once = Once::new();

/// Spawns `task` on the gateway's executor, starting its background threads
/// first if nothing runs it yet (`SMOL_THREADS` of them, 1 by default, as
/// smol's global executor does).
pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    start_threads(threads_from_env().unwrap_or(1));
    EXECUTOR.spawn(task).detach();
}

/// `SMOL_THREADS`, if it is set to a number.
pub fn threads_from_env() -> Option<usize> {
    std::env::var("SMOL_THREADS").ok()?.parse().ok()
}

/// Runs `main` to completion on this thread, which also runs the gateway's
/// executor and drives async-io's reactor while it waits, with `threads - 1`
/// more executor threads beside it.
///
/// With one thread a request's I/O events, its task and its timers are all
/// handled on the thread that waits in epoll: no wake-up crosses threads (no
/// futex, no eventfd write to interrupt the reactor).
pub fn block_on<T>(threads: usize, main: impl Future<Output = T>) -> T {
    start_threads(threads.saturating_sub(1));
    smol::block_on(EXECUTOR.run(main))
}

/// Starts `count` threads that run the executor (the first caller decides).
fn start_threads(count: usize) {
    THREADS.call_once(|| {
        for n in 1..=count {
            let started = std::thread::Builder::new()
                .name(format!("smol-{n}"))
                .spawn(|| loop {
                    // A panicking task must not take the thread with it.
                    std::panic::catch_unwind(|| {
                        smol::block_on(EXECUTOR.run(std::future::pending::<()>()))
                    })
                    .ok();
                });
            if let Err(err) = started {
                tracing::error!(%err, "cannot start an executor thread");
            }
        }
    });
}
