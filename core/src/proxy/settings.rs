//! Settings shared by every connection of a listener.

use std::sync::Arc;
use std::time::Duration;

use crate::config::CompiledConfig;
use crate::http::Limits;

/// Where a connection finds the configuration in force when a request arrives.
///
/// The adapter implements it (e.g. over an atomically swapped pointer) so a reload
/// takes effect for the next request while requests in flight keep the old one.
pub trait ConfigSource: Send + Sync {
    /// The configuration to route the next request with, or `None` when none is loaded.
    fn current(&self) -> Option<Arc<CompiledConfig>>;
}

/// Timeouts applied by the connection state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request head to its end (slow clients get 408).
    pub header_read: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle: Duration,
    /// Opening a backend connection (504 when exceeded).
    pub connect: Duration,
    /// Longest pause while a body streams in either direction.
    pub body_idle: Duration,
    /// Longest pause of a WebSocket tunnel (no byte either way) before it is
    /// closed.
    pub tunnel_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            connect: Duration::from_secs(5),
            body_idle: Duration::from_secs(60),
            tunnel_idle: Duration::from_secs(600),
        }
    }
}

/// Settings of one listener, shared by its connections (cloned for a second
/// listener that differs only in [`ConnSettings::proto`]).
#[derive(Clone)]
pub struct ConnSettings {
    /// Message size limits for client requests.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Scheme clients use on this listener (`http` or `https`): the `protocols`
    /// check, `context.Request.OriginalUrl.Scheme` and X-Forwarded-Proto.
    pub proto: &'static str,
    /// Where the configuration comes from.
    pub config: Arc<dyn ConfigSource>,
    /// Identity, time and ids for policies.
    pub policy: PolicyEnv,
    /// Where finished requests are reported.
    pub telemetry: Arc<dyn crate::telemetry::RecordSink>,
    /// Keep request header and trailer fields whose names contain `_`; when
    /// false (the default, as nginx) they are dropped as the head is parsed.
    pub allow_underscores_in_headers: bool,
    /// The port clients reach the gateway's HTTPS listener on (`None`: no
    /// HTTPS listener): where an API's `httpsRedirect` sends plain HTTP.
    pub https_port: Option<u16>,
}

impl std::fmt::Debug for ConnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSettings")
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("proto", &self.proto)
            .field(
                "allow_underscores_in_headers",
                &self.allow_underscores_in_headers,
            )
            .field("https_port", &self.https_port)
            .finish_non_exhaustive()
    }
}

/// What policies need from the gateway besides the configuration: its identity,
/// wall-clock time, request ids and randomness, all derived from inputs.
#[derive(Clone)]
pub struct PolicyEnv {
    /// `context.Deployment.GatewayId`.
    pub gateway_id: Arc<str>,
    /// `context.Deployment.Region`.
    pub region: Arc<str>,
    /// A monotonic instant and the Unix time in milliseconds at that instant, so
    /// `DateTime.UtcNow` is computed from `now` without reading a clock.
    pub wall_anchor: Option<(std::time::Instant, i64)>,
    /// Keys the hashing of the gateway's shared-state store (the driver
    /// builds the store; the core only carries the adapter's random seed).
    pub store_seed: u128,
    /// Keys the per-request ids and random seeds (SipHash-2-4 of a connection
    /// number and a counter, a pseudo-random function under a secret key), so
    /// they cannot be predicted from ones seen before.
    key: (u64, u64),
}

impl std::fmt::Debug for PolicyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEnv")
            .field("gateway_id", &self.gateway_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Default for PolicyEnv {
    fn default() -> Self {
        PolicyEnv::new("portcullis".into(), None, [0; 32])
    }
}

impl PolicyEnv {
    /// An environment for gateway `gateway_id`; `secret` is random bytes the
    /// adapter draws at start (it also seeds the shared stores' hashing).
    pub fn new(
        gateway_id: Arc<str>,
        wall_anchor: Option<(std::time::Instant, i64)>,
        secret: [u8; 32],
    ) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&secret[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&secret[16..]);
        PolicyEnv {
            gateway_id,
            region: "".into(),
            wall_anchor,
            store_seed: u128::from_le_bytes(seed),
            key: (word(0), word(8)),
        }
    }

    /// Unix time in milliseconds at `now`.
    pub fn unix_ms(&self, now: std::time::Instant) -> i64 {
        match self.wall_anchor {
            Some((at, ms)) => {
                if now >= at {
                    ms.saturating_add(
                        i64::try_from(now.duration_since(at).as_millis()).unwrap_or(i64::MAX),
                    )
                } else {
                    ms.saturating_sub(
                        i64::try_from(at.duration_since(now).as_millis()).unwrap_or(i64::MAX),
                    )
                }
            }
            None => 0,
        }
    }

    /// The pseudo-random function behind ids: SipHash-2-4 of (`conn`, `n`,
    /// `domain`) under the secret key.
    fn prf(&self, (conn, n): (u64, u64), domain: u64) -> u64 {
        #[allow(deprecated)] // SipHash-2-4 with a chosen key; still in std.
        let mut h = std::hash::SipHasher::new_with_keys(self.key.0, self.key.1);
        std::hash::Hasher::write_u64(&mut h, conn);
        std::hash::Hasher::write_u64(&mut h, n);
        std::hash::Hasher::write_u64(&mut h, domain);
        std::hash::Hasher::finish(&h)
    }

    /// A new trace id and span id, unpredictable (an all-zero one, which W3C
    /// forbids, is fixed by
    /// [`crate::telemetry::trace_context::SpanContext::child_of`]).
    pub fn next_span_ids(&self, ids: &mut IdSeq) -> ([u8; 16], [u8; 8]) {
        let n = ids.take();
        let prf = |domain: u64| self.prf(n, domain);
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&prf(4).to_be_bytes());
        trace[8..].copy_from_slice(&prf(5).to_be_bytes());
        (trace, prf(6).to_be_bytes())
    }

    /// A new request id (a version-4 GUID, unique within this gateway run when
    /// every connection has its own [`IdSeq`]) and a seed for the request's
    /// `Guid.NewGuid()` and `Random`.
    pub fn next_request_id(&self, ids: &mut IdSeq) -> (String, u64) {
        let mut id = String::with_capacity(36);
        let seed = self.next_request_id_into(ids, &mut id);
        (id, seed)
    }

    /// [`PolicyEnv::next_request_id`] written into `id` (its buffer reused);
    /// the randomness seed.
    pub fn next_request_id_into(&self, ids: &mut IdSeq, id: &mut String) -> u64 {
        let n = ids.take();
        let prf = |domain: u64| self.prf(n, domain);
        let mut g = [0u8; 16];
        g[..8].copy_from_slice(&prf(1).to_be_bytes());
        g[8..].copy_from_slice(&prf(2).to_be_bytes());
        g[6] = (g[6] & 0x0f) | 0x40;
        g[8] = (g[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        id.clear();
        for (i, b) in g.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                id.push('-');
            }
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 15)]));
        }
        prf(3)
    }
}

/// A connection's own run of id inputs for [`PolicyEnv`]'s request and span
/// ids: the driver gives every connection it accepts a distinct number, so ids
/// are unique across the gateway with no counter shared between connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdSeq {
    conn: u64,
    next: u64,
}

impl IdSeq {
    /// The ids of connection number `conn` (distinct per connection of a run).
    pub fn new(conn: u64) -> IdSeq {
        IdSeq { conn, next: 0 }
    }

    /// The next (connection, counter) pair, never the same one twice.
    fn take(&mut self) -> (u64, u64) {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        (self.conn, n)
    }
}
