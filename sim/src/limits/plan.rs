//! The shared-limits scenario's plan, from the seed: the limit, the failure
//! rule, and timed faults between the gateways and Redis.

use std::time::Duration;

use portcullis_core::config::store::{Counting, OnFailure};

use crate::faults::Rng;

/// Gateways sharing the one Redis.
pub const GATEWAYS: usize = 3;
/// Counter keys the clients spread their requests over.
pub const KEYS: usize = 2;

/// One kind of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreFault {
    /// Gateway `gw` and Redis cannot reach each other; what they send
    /// meanwhile arrives once the partition heals, as TCP's retransmissions
    /// deliver it (turmoil's `hold` and `release`).
    Partition { gw: usize },
    /// Gateway `gw` and Redis cannot reach each other, and what they send
    /// meanwhile is lost: an open connection between them never delivers
    /// again (turmoil's `partition`: its TCP does not retransmit), as when a
    /// middlebox forgets the connection. Only with
    /// [`LimitsPlan::new`]'s `black_holes`.
    BlackHole { gw: usize },
    /// Extra latency on the link between gateway `gw` and Redis (above the
    /// store's timeout, every call times out).
    Latency { gw: usize, ms: u64 },
    /// Messages between gateway `gw` and Redis are lost (which stalls the TCP
    /// connections they belong to for good). Only with `black_holes`.
    Loss { gw: usize, rate: f64 },
    /// Redis is down; it comes back empty.
    RedisDown,
}

/// A fault active over `[from, until)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWindow {
    pub from: Duration,
    pub until: Duration,
    pub fault: StoreFault,
}

/// What one seed does.
#[derive(Debug, Clone)]
pub struct LimitsPlan {
    pub seed: u64,
    /// `rate-limit-by-key calls`.
    pub calls: u64,
    /// `renewal-period`, in seconds.
    pub period_secs: u64,
    /// The gateways' rule when Redis cannot answer.
    pub on_failure: OnFailure,
    /// The store comes from the gateways' flag (`GatewayOptions::store`),
    /// else from their configuration (the snapshot's `store`).
    pub store_from_flag: bool,
    /// How the gateways count: exact in three seeds of four.
    pub counting: Counting,
    /// The faults.
    pub windows: Vec<StoreWindow>,
    /// From here on nothing is faulty.
    pub final_repair: Duration,
    /// How long the run lasts.
    pub duration: Duration,
}

/// The state the active faults add up to at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreState {
    pub partitioned: [bool; GATEWAYS],
    pub black_holed: [bool; GATEWAYS],
    pub latency_ms: [u64; GATEWAYS],
    pub loss: [f64; GATEWAYS],
    pub redis_down: bool,
}

impl Default for StoreState {
    fn default() -> Self {
        StoreState {
            partitioned: [false; GATEWAYS],
            black_holed: [false; GATEWAYS],
            latency_ms: [0; GATEWAYS],
            loss: [0.0; GATEWAYS],
            redis_down: false,
        }
    }
}

impl StoreState {
    /// Whether gateway `gw` cannot use Redis at all.
    pub fn cut(&self, gw: usize) -> bool {
        self.partitioned[gw] || self.black_holed[gw] || self.redis_down
    }
}

impl LimitsPlan {
    /// The plan of `seed` for a run of `duration` (a minute at least);
    /// `on_failure` and `counting` fix the rule and the counting instead of
    /// drawing them; `black_holes` adds the faults that lose messages
    /// ([`StoreFault::BlackHole`], [`StoreFault::Loss`]).
    pub fn new(
        seed: u64,
        duration: Duration,
        on_failure: Option<OnFailure>,
        counting: Option<Counting>,
        black_holes: bool,
    ) -> LimitsPlan {
        // A stream of its own: the fail-static plan of the seed is unchanged.
        let mut rng = Rng::new(seed ^ 0x5_4a2e_d11e_1175);
        let total = duration.as_secs().max(60);
        let final_repair = total * 3 / 4;
        let calls = rng.range(3, 10);
        let period_secs = rng.range(1, 4);
        let drawn = if rng.chance(0.5) {
            OnFailure::Open
        } else {
            OnFailure::Closed
        };
        let on_failure = on_failure.unwrap_or(drawn);
        let store_from_flag = rng.chance(0.5);
        let mut windows = Vec::new();
        for _ in 0..rng.range(2, 6) {
            let from = rng.range(10, final_repair.saturating_sub(5).max(11));
            let gw = rng.range(0, GATEWAYS as u64 - 1) as usize;
            let (fault, len) = match rng.range(0, 9) {
                0 | 1 if black_holes => (StoreFault::BlackHole { gw }, rng.range(2, 40)),
                0..=3 => (StoreFault::Partition { gw }, rng.range(2, 40)),
                4 | 5 => (
                    StoreFault::Latency {
                        gw,
                        ms: rng.range(20, 600),
                    },
                    rng.range(2, 30),
                ),
                6 | 7 if black_holes => (
                    StoreFault::Loss {
                        gw,
                        rate: rng.range(5, 40) as f64 / 100.0,
                    },
                    rng.range(2, 20),
                ),
                6 | 7 => (StoreFault::Partition { gw }, rng.range(2, 20)),
                _ => (StoreFault::RedisDown, rng.range(1, 10)),
            };
            windows.push(StoreWindow {
                from: Duration::from_secs(from),
                until: Duration::from_secs((from + len).min(final_repair)),
                fault,
            });
        }
        windows.sort_by_key(|w| w.from);
        // Drawn last, so the rest of the plan does not depend on it.
        let drawn = if rng.chance(0.25) {
            Counting::Approximate
        } else {
            Counting::Exact
        };
        let counting = counting.unwrap_or(drawn);
        LimitsPlan {
            seed,
            calls,
            period_secs,
            on_failure,
            store_from_flag,
            counting,
            windows,
            final_repair: Duration::from_secs(final_repair),
            duration,
        }
    }

    /// The state at `t`.
    pub fn state_at(&self, t: Duration) -> StoreState {
        let mut s = StoreState::default();
        if t >= self.final_repair {
            return s;
        }
        for w in self.windows.iter().filter(|w| w.from <= t && t < w.until) {
            match w.fault {
                StoreFault::Partition { gw } => s.partitioned[gw] = true,
                StoreFault::BlackHole { gw } => s.black_holed[gw] = true,
                StoreFault::Latency { gw, ms } => s.latency_ms[gw] = s.latency_ms[gw].max(ms),
                StoreFault::Loss { gw, rate } => s.loss[gw] = s.loss[gw].max(rate),
                StoreFault::RedisDown => s.redis_down = true,
            }
        }
        s
    }
}
