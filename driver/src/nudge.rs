//! "Check your files now": what `Gateway::reload` (SIGHUP) tells the watchers
//! of the configuration file and of the TLS certificates, which otherwise
//! check on their timer.

/// The sending side, kept by the gateway: one [`Nudge::send`] reaches every
/// watcher once, however many are sent before it looks.
#[derive(Debug, Default, Clone)]
pub struct Nudge {
    watchers: Vec<async_channel::Sender<()>>,
}

/// A watcher's side: resolves when nudged.
#[derive(Debug)]
pub struct Nudged {
    rx: async_channel::Receiver<()>,
}

impl Nudge {
    /// A receiver for one more watcher.
    pub fn watcher(&mut self) -> Nudged {
        // One pending nudge is enough: the watcher reads everything when it wakes.
        let (tx, rx) = async_channel::bounded(1);
        self.watchers.push(tx);
        Nudged { rx }
    }

    /// Tells every watcher to check now; `false` if there is none.
    pub fn send(&self) -> bool {
        for tx in &self.watchers {
            // Full: a nudge is pending already; closed: the watcher has stopped.
            let _ = tx.try_send(());
        }
        !self.watchers.is_empty()
    }
}

impl Nudged {
    /// A receiver that is never nudged (a watcher started without a gateway).
    pub fn never() -> Nudged {
        let (_, rx) = async_channel::bounded(1);
        Nudged { rx }
    }

    /// Resolves at the next nudge; never once the gateway is gone.
    pub async fn recv(&self) {
        if self.rx.recv().await.is_err() {
            futures_lite::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn every_watcher_is_nudged_once_for_several_sends() {
        let mut nudge = Nudge::default();
        let (a, b) = (nudge.watcher(), nudge.watcher());
        assert!(block_on(poll_once(a.recv())).is_none());
        assert!(nudge.send());
        assert!(nudge.send());
        block_on(a.recv());
        block_on(b.recv());
        assert!(block_on(poll_once(a.recv())).is_none());
        assert!(block_on(poll_once(Nudged::never().recv())).is_none());
    }
}
