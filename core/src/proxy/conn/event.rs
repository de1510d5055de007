//! What the connection machine asks of its adapter, and what the adapter
//! tells it about a failed backend connection.

use super::UpstreamTarget;
use crate::policy::respond::TraceRecord;
use crate::policy::send::CallRequest;
use crate::policy::store::StoreRequest;

/// What the adapter must do next, besides moving bytes.
#[derive(Debug)]
pub enum Event {
    /// Get a connection to this backend: from the pool, or a new one when `fresh`.
    /// Answer with `handle_upstream_connected` or `handle_upstream_failed`.
    ConnectUpstream {
        /// Where to connect.
        target: UpstreamTarget,
        /// A pooled connection must not be used (a retry after a stale one).
        fresh: bool,
    },
    /// The backend connection is no longer needed; `reuse`: it may go back to the pool.
    ReleaseUpstream {
        /// Whether the connection is clean and may be reused.
        reuse: bool,
    },
    /// Make this HTTP call for a policy (`send-request`); answer with
    /// `handle_call_done` unless `one_way` (`send-one-way-request`: nobody waits).
    Call {
        /// The call.
        request: CallRequest,
        /// Fire and forget.
        one_way: bool,
    },
    /// Make these calls at once (a `wait` of `send-request`s); answer with
    /// `handle_calls_done` when all finished, or with `any` at the first
    /// (dropping the others).
    CallAll {
        /// The calls, in order.
        requests: Vec<CallRequest>,
        /// Go on at the first answer.
        any: bool,
    },
    /// A `trace` policy's record, for the log.
    Trace(TraceRecord),
    /// A request (or status probe) was answered 503 for lack of configuration:
    /// the driver logs it, at a rate it chooses. Nothing to answer.
    NotReady,
    /// Put this request to the shared-state store (counters, concurrency
    /// slots, the policy cache, key sets); answer with `handle_store_done`
    /// unless `one_way` (writes nobody waits for). The request has no deadline
    /// of its own: a store that cannot answer in time answers `Unavailable`.
    Store {
        /// The operations.
        request: StoreRequest,
        /// Nobody waits for the answer.
        one_way: bool,
    },
    /// Fetch these OpenID configurations' key sets again and install them
    /// (a token named an unknown key); answer with `handle_key_sets_refreshed`.
    RefreshKeySets {
        /// The configuration URLs.
        urls: Vec<String>,
    },
    /// Write what is pending for the client, then close the connection.
    CloseClient {
        /// The client may still be sending (an error cut its request short): close
        /// our side first and drain for a moment, so it reads the answer instead of
        /// a reset.
        linger: bool,
    },
}

/// Why the backend connection failed, as the adapter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Name resolution or connect failed (refused, unreachable).
    ConnectFailed,
    /// Reading from or writing to the connection failed (reset).
    Io,
    /// Not attempted: the gateway's limit of concurrent WebSocket connections
    /// is reached (a handshake; answered 503).
    TunnelLimit,
}
