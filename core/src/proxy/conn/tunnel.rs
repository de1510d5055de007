//! WebSocket APIs: the handshake forwarded with its `Upgrade`, and after the
//! backend's `101` the connection as a tunnel, bytes relayed both ways without
//! HTTP parsing until both sides have closed (each side's end is passed on
//! as a half-close), the tunnel's idle timeout passes or the gateway stops.
//!
//! The connection never goes back to HTTP after a tunnel, and the backend
//! connection is never pooled: both close at its end. The handshake is one
//! request for telemetry, status 101, reported when the tunnel ends, with
//! every byte relayed counted.

use std::time::Instant;

use bytes::BytesMut;

use super::{DeadlineKind, Event, Phase, ProxyConn, HIGH_WATER};
use crate::http::websocket::{write_switching_response, Handshake, WEBSOCKET_VERSION};
use crate::http::ResponseHead;
use crate::proxy::local::write_error_message;

/// Where a tunnel's two directions stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Tunnel {
    /// The backend has closed its side (read 0 bytes).
    upstream_eof: bool,
    /// Our write side to the backend is shut (the client had closed its side).
    upstream_shut: bool,
    /// Our write side to the client is shut (the backend had closed its side).
    client_shut: bool,
}

impl Tunnel {
    /// The backend closed its side; our write side to it is shut; our write
    /// side to the client is shut.
    pub(super) fn sides(&self) -> (bool, bool, bool) {
        (self.upstream_eof, self.upstream_shut, self.client_shut)
    }
}

impl ProxyConn {
    /// Hook: a request to a WebSocket API that is an invalid handshake gets
    /// its 400 (or 426 for a version other than 13) and the connection closes.
    /// `true` when it was answered.
    pub(super) fn refuse_handshake(&mut self, handshake: Handshake, now: Instant) -> bool {
        let message = match handshake {
            Handshake::None | Handshake::WebSocket => return false,
            Handshake::Invalid(reason) => reason,
            Handshake::UnsupportedVersion => {
                self.tally.error("client", "InvalidRequest");
                self.tally.status(426);
                crate::http::encode::write_local_response(
                    426,
                    None,
                    &[(b"Sec-WebSocket-Version", WEBSOCKET_VERSION)],
                    b"",
                    true,
                    &mut self.client_out,
                );
                self.report(now);
                self.close(now);
                return true;
            }
        };
        self.tally.error("client", "InvalidRequest");
        self.tally.status(400);
        write_error_message(400, message, true, &mut self.client_out);
        self.report(now);
        self.close(now);
        true
    }

    /// The backend switched to WebSocket: the client gets the `101`, then the
    /// connection is a tunnel. Outbound policies do not run (there is no
    /// response to change), and what the handshake's policies hold (concurrency
    /// slots) goes back now.
    pub(super) fn start_tunnel(&mut self, head: &ResponseHead, now: Instant) -> bool {
        if self.draining {
            // The gateway is stopping: a tunnel begun now would only be cut.
            return self.fail_exchange(503, now);
        }
        self.policy_exchange_done(now);
        self.tally.status(101);
        self.tally.backend_end(now);
        self.note_policy_outcome();
        self.exchange = None;
        write_switching_response(head, &mut self.client_out);
        self.upstream_scan.reset();
        self.phase = Phase::Tunnel(Tunnel::default());
        self.set_deadline(
            now,
            self.settings.timeouts.tunnel_idle,
            DeadlineKind::TunnelIdle,
        );
        true
    }

    /// Whether the client may be read in the tunnel: until it closed, while
    /// the backend takes what it sent.
    pub(super) fn tunnel_wants_client_read(&self) -> bool {
        !self.client_eof && self.upstream_out.len() < HIGH_WATER
    }

    /// Whether the backend may be read in the tunnel: until it closed, while
    /// the client takes what it sent.
    pub(super) fn tunnel_wants_upstream_read(&self, tunnel: &Tunnel) -> bool {
        !tunnel.upstream_eof && self.client_out.len() < HIGH_WATER
    }

    /// Bytes read from the backend in the tunnel (empty: it closed its side).
    pub(super) fn tunnel_upstream_data(&mut self, data: &[u8], now: Instant) {
        if let Phase::Tunnel(tunnel) = &mut self.phase {
            if data.is_empty() {
                tunnel.upstream_eof = true;
            }
        }
        self.upstream_in.extend_from_slice(data);
        if !data.is_empty() {
            self.touch(now);
        }
        self.progress(now);
    }

    /// Whether the adapter should shut the write side of the backend
    /// connection now: the client closed its side and all it sent is out.
    pub fn wants_upstream_shutdown(&self) -> bool {
        matches!(self.phase, Phase::Tunnel(t) if !t.upstream_shut)
            && self.client_eof
            && self.upstream_out.is_empty()
    }

    /// Whether the adapter should shut the write side of the client
    /// connection now: the backend closed its side and all it sent is out.
    pub fn wants_client_shutdown(&self) -> bool {
        matches!(self.phase, Phase::Tunnel(t) if t.upstream_eof && !t.client_shut)
            && self.client_out.is_empty()
    }

    /// The write side of the backend connection was shut (or failed to be).
    pub fn upstream_shut_down(&mut self, now: Instant) {
        if let Phase::Tunnel(tunnel) = &mut self.phase {
            tunnel.upstream_shut = true;
        }
        self.progress(now);
    }

    /// The write side of the client connection was shut (or failed to be).
    pub fn client_shut_down(&mut self, now: Instant) {
        if let Phase::Tunnel(tunnel) = &mut self.phase {
            tunnel.client_shut = true;
        }
        self.progress(now);
    }

    /// Relays what each side sent to the other; closes once both sides have
    /// closed and everything is out. True if the phase changed.
    pub(super) fn pump_tunnel(&mut self, now: Instant) -> bool {
        let Phase::Tunnel(tunnel) = self.phase else {
            return false;
        };
        relay(&mut self.client_in, &mut self.upstream_out);
        relay(&mut self.upstream_in, &mut self.client_out);
        if self.client_eof && tunnel.upstream_eof && tunnel.upstream_shut && tunnel.client_shut {
            self.end_tunnel(now);
            return true;
        }
        false
    }

    /// Ends the tunnel: the handshake's record goes out, the backend
    /// connection is dropped (never pooled) and the client's closed.
    pub(super) fn end_tunnel(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Tunnel(_)) {
            self.events
                .push_back(Event::ReleaseUpstream { reuse: false });
            self.upstream_in.clear();
            self.upstream_out.clear();
            self.close(now);
        }
    }

    /// The client closed its side in the tunnel: passed on to the backend
    /// once what it sent is out (see [`ProxyConn::wants_upstream_shutdown`]).
    pub(super) fn tunnel_client_eof(&mut self, now: Instant) {
        self.progress(now);
    }
}

/// Moves what `from` holds to the end of `to`, without copying when `to` is empty.
fn relay(from: &mut BytesMut, to: &mut BytesMut) {
    if from.is_empty() {
        return;
    }
    if to.is_empty() {
        std::mem::swap(from, to);
    } else {
        to.extend_from_slice(from);
        from.clear();
    }
}
