//! Cancellation and task tracking for graceful shutdown, on smol's channels.

/// A stop signal shared by every task of a gateway: cheap to clone, fired once.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    // Nothing is ever sent: closing the channel is the signal.
    rx: smol::channel::Receiver<()>,
    _tx: smol::channel::Sender<()>,
}

impl Stop {
    pub(crate) fn new() -> Stop {
        let (tx, rx) = smol::channel::bounded(1);
        Stop { rx, _tx: tx }
    }

    /// Fires the signal.
    pub(crate) fn cancel(&self) {
        self.rx.close();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.rx.is_closed()
    }

    /// Resolves once the signal has fired.
    pub(crate) async fn cancelled(&self) {
        let _ = self.rx.recv().await;
    }
}

/// Counts tasks so a shutdown can wait for them: each holds a [`TaskToken`].
#[derive(Debug)]
pub(crate) struct Tracker {
    tx: Option<smol::channel::Sender<()>>,
    rx: smol::channel::Receiver<()>,
}

/// Held by a tracked task for as long as it runs.
#[derive(Clone, Debug)]
pub(crate) struct TaskToken {
    _tx: smol::channel::Sender<()>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        let (tx, rx) = smol::channel::bounded(1);
        Tracker { tx: Some(tx), rx }
    }

    /// A token for a new task.
    pub(crate) fn token(&self) -> Option<TaskToken> {
        self.tx.as_ref().map(|tx| TaskToken { _tx: tx.clone() })
    }

    /// Resolves once every token handed out has been dropped.
    pub(crate) async fn wait(mut self) {
        self.tx = None;
        let _ = self.rx.recv().await;
    }
}
