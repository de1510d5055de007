//! A connection between requests, idle long enough to have given its buffers
//! back, in a compact form: ten thousand idle keep-alive connections should
//! hold a few words each, not ten thousand state machines (see
//! [`ProxyConn::park`]).

use std::sync::Arc;
use std::time::Instant;

use super::{DeadlineKind, Phase, ProxyConn};
use crate::cert::ClientCertificate;
use crate::proxy::settings::{ConnSettings, IdSeq};

/// What an idle connection keeps while parked; the rest of its machine is in
/// its initial state then, and is rebuilt by [`ParkedConn::resume`].
#[derive(Debug)]
pub struct ParkedConn {
    settings: Arc<ConnSettings>,
    client_ip: Box<str>,
    client_cert: Option<Arc<ClientCertificate>>,
    ids: IdSeq,
    /// When the idle connection is closed.
    idle_until: Instant,
    read_total: u64,
    written_total: u64,
}

impl ProxyConn {
    /// Whether the connection could be parked: between requests, with nothing
    /// read of the next one, its buffers given back (the shrink deadline has
    /// passed) and nothing pending. A busy connection never parks, so the
    /// warm keep-alive path allocates nothing for parking.
    pub fn can_park(&self) -> bool {
        self.phase == Phase::Head { started: false }
            && self.exchange.is_none()
            && matches!(self.deadline, Some((_, DeadlineKind::Idle)))
            && self.buffer_capacity() == 0
            && self.events.is_empty()
            && !self.tally.active()
            && !self.client_eof
            && !self.draining
            && self.at_boundary
    }

    /// Takes out the connection's compact form when [`ProxyConn::can_park`];
    /// this machine is left closed, to be dropped. `None` (and nothing
    /// changed) when it cannot park.
    pub fn park(&mut self) -> Option<ParkedConn> {
        if !self.can_park() {
            return None;
        }
        let (idle_until, _) = self.deadline?;
        self.phase = Phase::Closed;
        self.deadline = None;
        Some(ParkedConn {
            settings: self.settings.clone(),
            client_ip: std::mem::take(&mut self.client_ip),
            client_cert: self.client_cert.take(),
            ids: self.ids,
            idle_until,
            read_total: self.read_total,
            written_total: self.written_total,
        })
    }
}

impl ParkedConn {
    /// When the parked connection must be resumed to be closed (its idle
    /// timeout).
    pub fn deadline(&self) -> Instant {
        self.idle_until
    }

    /// The machine again, as it was when parked.
    pub fn resume(self) -> ProxyConn {
        let mut conn = ProxyConn::with_deadline(
            self.settings,
            self.client_ip,
            self.ids,
            (self.idle_until, DeadlineKind::Idle),
        );
        conn.client_cert = self.client_cert;
        conn.read_total = self.read_total;
        conn.written_total = self.written_total;
        conn
    }
}
