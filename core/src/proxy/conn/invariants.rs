//! The connection machine under the machine contract ([`crate::machine`]),
//! and the invariants it keeps:
//!
//! 1. **Phase and exchange agree.** A request is being proxied exactly when
//!    the phase says so; between requests there is no exchange.
//! 2. **Nothing for a backend between requests.** No bytes wait for a backend
//!    unless a request is being proxied.
//! 3. **Closed is final and quiet.** A closed connection has no exchange, no
//!    deadline and nothing for a backend, and `CloseClient` is its last event.
//! 4. **A waiting connection always has a deadline.** Between requests the
//!    idle (or shrink, or head-read) deadline is set, so an idle client is
//!    always closed in the end.
//! 5. **Bytes add up.** What was taken from the client is never more than was
//!    read from it.
//! 6. **A tunnel relays, nothing else.** In the tunnel phase there is no
//!    exchange and no HTTP: every byte read from either side has been handed
//!    to the other (nothing waits unrelayed), the idle deadline is set, and a
//!    side's write half is shut only after that side's peer closed and all it
//!    sent was written.
//!
//! The driver drains [`ProxyConn::poll_event`] after every input, so debug
//! builds check these there, once per input.

use std::time::Instant;

use super::{DeadlineKind, Event, Phase, ProxyConn};
use crate::machine::Machine;

impl Machine for ProxyConn {
    type Output = Event;

    fn poll_output(&mut self) -> Option<Event> {
        self.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        ProxyConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        ProxyConn::handle_timeout(self, now)
    }

    fn check_invariants(&self) {
        match self.phase {
            Phase::Exchange => assert!(self.exchange.is_some(), "exchange phase without one"),
            Phase::Head { .. } => {
                assert!(self.exchange.is_none(), "an exchange between requests");
                assert!(
                    self.upstream_out.is_empty(),
                    "bytes for a backend between requests"
                );
                assert!(
                    self.deadline.is_some(),
                    "a waiting connection with no deadline"
                );
            }
            Phase::Tunnel(tunnel) => {
                assert!(self.exchange.is_none(), "a tunnel with an exchange");
                assert!(
                    self.client_in.is_empty() && self.upstream_in.is_empty(),
                    "bytes waiting unrelayed in a tunnel"
                );
                assert!(
                    matches!(self.deadline, Some((_, DeadlineKind::TunnelIdle))),
                    "a tunnel without its idle deadline"
                );
                let (upstream_eof, upstream_shut, client_shut) = tunnel.sides();
                assert!(
                    !upstream_shut || self.client_eof,
                    "the backend's write side shut before the client closed"
                );
                assert!(
                    !client_shut || upstream_eof,
                    "the client's write side shut before the backend closed"
                );
            }
            Phase::Closed => {
                assert!(
                    self.exchange.is_none(),
                    "a closed connection with an exchange"
                );
                assert!(
                    self.deadline.is_none(),
                    "a closed connection with a deadline"
                );
                assert!(
                    self.upstream_out.is_empty(),
                    "a closed connection with bytes for a backend"
                );
                let closes = self
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::CloseClient { .. }))
                    .count();
                assert!(closes <= 1, "{closes} CloseClient events");
                if closes == 1 {
                    assert!(
                        matches!(self.events.back(), Some(Event::CloseClient { .. })),
                        "an event after CloseClient"
                    );
                }
            }
        }
        assert!(
            self.client_in.len() as u64 <= self.read_total,
            "more bytes buffered than read"
        );
    }
}
