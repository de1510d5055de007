//! A resettable timer on async-io that registers with the reactor only when
//! its deadline moves earlier. Every registration with async-io's reactor
//! writes its eventfd (a wake-up of the thread in epoll), and a connection
//! pushes its deadline later on nearly every request; a timer armed too early
//! instead fires once, finds its deadline moved, and re-arms.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use portcullis_driver::runtime::Timer;

/// An `async-io` timer (already `Unpin`, so resettable through any pin).
#[derive(Debug)]
pub struct SmolTimer {
    inner: smol::Timer,
    /// When `inner` fires, never after `deadline`; `None` once it has fired.
    armed: Option<Instant>,
    /// When this timer resolves.
    deadline: Instant,
}

impl SmolTimer {
    /// A timer resolving at `deadline`.
    pub fn at(deadline: Instant) -> Self {
        SmolTimer {
            inner: smol::Timer::at(deadline),
            armed: Some(deadline),
            deadline,
        }
    }
}

impl Future for SmolTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(Pin::new(&mut self.inner).poll(cx));
            match self.armed {
                // Fired for a deadline that has since moved later: wait on.
                Some(armed) if armed < self.deadline => {
                    let deadline = self.deadline;
                    self.inner.set_at(deadline);
                    self.armed = Some(deadline);
                }
                _ => {
                    self.armed = None;
                    return Poll::Ready(());
                }
            }
        }
    }
}

impl Timer for SmolTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
        // Armed no later than the new deadline: leave the reactor alone.
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        self.inner.set_at(deadline);
        self.armed = Some(deadline);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_deadline_moved_later_is_waited_for() {
        smol::block_on(async {
            let start = Instant::now();
            let mut timer = SmolTimer::at(start + Duration::from_millis(20));
            Pin::new(&mut timer).reset(start + Duration::from_millis(80));
            (&mut timer).await;
            assert!(start.elapsed() >= Duration::from_millis(80));
        });
    }

    #[test]
    fn a_deadline_moved_earlier_fires_early() {
        smol::block_on(async {
            let start = Instant::now();
            let mut timer = SmolTimer::at(start + Duration::from_secs(3600));
            Pin::new(&mut timer).reset(start + Duration::from_millis(20));
            (&mut timer).await;
            assert!(start.elapsed() < Duration::from_secs(60));
        });
    }

    #[test]
    fn a_fired_timer_reset_later_fires_again() {
        smol::block_on(async {
            let start = Instant::now();
            let mut timer = SmolTimer::at(start + Duration::from_millis(10));
            (&mut timer).await;
            Pin::new(&mut timer).reset(start + Duration::from_millis(40));
            (&mut timer).await;
            assert!(start.elapsed() >= Duration::from_millis(40));
        });
    }
}
