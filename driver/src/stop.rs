//! Cancellation and task tracking for graceful shutdown, on `async-channel`:
//! they work on any executor.

/// A stop signal shared by every task of a gateway: cheap to clone, fired once.
#[derive(Clone, Debug)]
pub struct Stop {
    // Nothing is ever sent: closing the channel is the signal.
    rx: async_channel::Receiver<()>,
    _tx: async_channel::Sender<()>,
}

impl Stop {
    /// A signal not fired yet.
    pub fn new() -> Stop {
        let (tx, rx) = async_channel::bounded(1);
        Stop { rx, _tx: tx }
    }

    /// Fires the signal.
    pub fn cancel(&self) {
        self.rx.close();
    }

    /// Whether the signal has fired.
    pub fn is_cancelled(&self) -> bool {
        self.rx.is_closed()
    }

    /// Resolves once the signal has fired.
    pub async fn cancelled(&self) {
        let _ = self.rx.recv().await;
    }
}

/// Counts tasks so a shutdown can wait for them: each holds a [`TaskToken`].
#[derive(Debug)]
pub struct Tracker {
    tx: Option<async_channel::Sender<()>>,
    rx: async_channel::Receiver<()>,
}

/// Held by a tracked task for as long as it runs.
#[derive(Clone, Debug)]
pub struct TaskToken {
    _tx: async_channel::Sender<()>,
}

impl Tracker {
    /// A tracker of no task yet.
    pub fn new() -> Tracker {
        let (tx, rx) = async_channel::bounded(1);
        Tracker { tx: Some(tx), rx }
    }

    /// A token for a new task.
    pub fn token(&self) -> Option<TaskToken> {
        self.tx.as_ref().map(|tx| TaskToken { _tx: tx.clone() })
    }

    /// Resolves once every token handed out has been dropped.
    pub async fn wait(mut self) {
        self.tx = None;
        let _ = self.rx.recv().await;
    }
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn a_stop_fires_once_for_every_clone() {
        let stop = Stop::new();
        let other = stop.clone();
        assert!(!other.is_cancelled());
        assert!(block_on(poll_once(other.cancelled())).is_none());
        stop.cancel();
        assert!(other.is_cancelled());
        block_on(other.cancelled());
    }

    #[test]
    fn a_tracker_waits_for_every_token() {
        let tracker = Tracker::new();
        let (a, b) = (tracker.token(), tracker.token());
        let mut wait = Box::pin(tracker.wait());
        assert!(block_on(poll_once(&mut wait)).is_none());
        drop(a);
        assert!(block_on(poll_once(&mut wait)).is_none());
        drop(b);
        block_on(wait);
    }
}
