//! The event trace of one run: what the driver did and what every host saw, in
//! simulated time. The invariants are checked on it; its hash shows determinism.

use std::sync::{Arc, Mutex};

/// What a client got for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the expected body; the revision from the `X-Rev` header.
    Ok { rev: u64 },
    /// Another status (503 while not ready, 404 for an empty configuration...).
    Status(u16),
    /// A 200 whose body or revision header is not what the backend and policy give.
    Wrong(String),
    /// No answer: connection refused or reset, or the timeout.
    Failed,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A gateway process started (`backup`: it keeps a backup).
    GatewayStarted {
        gw: usize,
        backup: bool,
    },
    /// A gateway process crashed (the driver crashed its host).
    GatewayCrashed {
        gw: usize,
    },
    /// The driver corrupted a gateway's backup file while it was down.
    BackupCorrupted {
        gw: usize,
    },
    /// A gateway put a configuration revision in force (`digest`: its content
    /// digest, as the management plane stamped it).
    Applied {
        gw: usize,
        rev: u64,
        digest: Option<String>,
    },
    /// Client request `n` through gateway `gw` (path
    /// `hosts::traffic::request_path(gw, n)`) sent at `sent_ms` was answered.
    Answer {
        gw: usize,
        n: u64,
        sent_ms: u64,
        answer: Answer,
    },
    /// Whether gateway `gw` can reach the management plane changed: `cut` while
    /// partitioned from it, while it is down, or while its name does not resolve.
    Cut {
        gw: usize,
        cut: bool,
    },
    /// The management plane crashed / started.
    ManagementCrashed,
    ManagementStarted,
    /// A fault took effect or ended (informational).
    Fault(String),
    /// The operator's configuration change committed revision `rev`.
    Changed {
        rev: u64,
    },
    /// Every fault healed for good.
    FinalRepair,
    /// The auditor read the request records the management plane stored (those
    /// stamped before `to_ms`, simulated time): `records` of them, `distinct`
    /// paths, and `dropped` records the gateways reported dropped.
    TelemetryRead {
        to_ms: u64,
        records: usize,
        distinct: usize,
        dropped: u64,
    },
    /// The auditor could not read the records.
    TelemetryUnreadable(String),
    /// Shared limits: request `n` of the client of gateway `gw`, for counter
    /// key `key`, sent at `sent_ms`, was answered (`status` `None`: no
    /// answer) with the calls left per the `X-Remaining` header.
    LimitAnswer {
        gw: usize,
        key: usize,
        n: u64,
        sent_ms: u64,
        status: Option<u16>,
        remaining: Option<u64>,
    },
    /// Shared limits: whether gateway `gw` can reach Redis changed.
    StoreCut {
        gw: usize,
        cut: bool,
    },
    /// Shared limits: the Redis host crashed (every key lost) / started.
    RedisCrashed,
    RedisStarted,
}

/// Events with their simulated time in milliseconds, shared by every host.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    events: Arc<Mutex<Vec<(u64, Event)>>>,
}

impl Trace {
    /// Records `event` at `ms`.
    pub fn push(&self, ms: u64, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((ms, event));
    }

    /// Records `event` now (inside a host).
    pub fn now(&self, event: Event) {
        self.push(sim_ms(), event);
    }

    /// Everything so far.
    pub fn events(&self) -> Vec<(u64, Event)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// FNV-1a over the events' debug form: equal for equal traces.
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (ms, e) in self.events() {
            for b in format!("{ms}:{e:?};").bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// Simulated milliseconds since the start (inside a host).
pub fn sim_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}
