//! Faults chosen from the seed: a plan of timed faults, and the state every fault
//! active at a moment adds up to.

use std::time::Duration;

/// A small deterministic generator (SplitMix64): the plan depends on the seed only.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005e_ed0f_fa11_57a7)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The small telemetry buffer of some seeds: a few dozen seconds of records.
pub const SMALL_BUFFER_BYTES: u64 = 16 * 1024;

/// One kind of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Gateway `gw` and the management plane cannot reach each other.
    Partition { gw: usize },
    /// Extra latency on the link between gateway `gw` and the management plane.
    Latency { gw: usize, ms: u64 },
    /// Messages between gateway `gw` and the management plane are lost (which
    /// breaks the TCP connections they belong to).
    Loss { gw: usize, rate: f64 },
    /// The management plane is down.
    ManagementDown,
    /// Gateway `gw` is down; `corrupt`: its backup file is damaged meanwhile.
    GatewayDown { gw: usize, corrupt: bool },
    /// The management plane's name does not resolve.
    DnsFailure,
}

/// A fault active over `[from, until)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub from: Duration,
    pub until: Duration,
    pub fault: Fault,
}

/// What one seed does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    /// Which gateways keep a backup.
    pub backup: [bool; 2],
    /// The faults.
    pub windows: Vec<Window>,
    /// When the operator changes the configuration.
    pub changes: Vec<Duration>,
    /// From here on nothing is faulty.
    pub final_repair: Duration,
    /// The gateways' telemetry upload buffer (`TelemetryOptions::buffer_bytes`):
    /// small in one seed in four, so that it overflows during long outages.
    pub buffer_bytes: u64,
    /// How long the run lasts.
    pub duration: Duration,
}

/// The state the active faults add up to at a moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub partitioned: [bool; 2],
    pub latency_ms: [u64; 2],
    pub loss: [f64; 2],
    pub management_down: bool,
    pub gateway_down: [bool; 2],
    pub corrupt: [bool; 2],
    pub dns_failure: bool,
}

impl State {
    /// Whether gateway `gw` cannot reach the management plane at all.
    pub fn cut(&self, gw: usize) -> bool {
        self.partitioned[gw] || self.management_down || self.dns_failure
    }
}

impl Plan {
    /// The plan of `seed` for a run of `duration` (at least ten minutes).
    pub fn new(seed: u64, duration: Duration) -> Plan {
        let mut rng = Rng::new(seed);
        let total = duration.as_secs();
        // Faults in the first three quarters, then a quiet end in which every
        // gateway must catch up.
        let final_repair = total * 3 / 4;
        let backup = match rng.range(0, 3) {
            0 => [true, false],
            1 => [false, true],
            2 => [true, true],
            _ => [true, false],
        };
        let mut windows = Vec::new();
        let count = rng.range(4, 12);
        for _ in 0..count {
            let from = rng.range(30, final_repair - 20);
            let gw = rng.range(0, 1) as usize;
            let (fault, len) = match rng.range(0, 9) {
                0..=2 => (Fault::Partition { gw }, rng.range(10, 900)),
                3 => (
                    Fault::Latency {
                        gw,
                        ms: rng.range(50, 3000),
                    },
                    rng.range(10, 600),
                ),
                4 => (
                    Fault::Loss {
                        gw,
                        rate: rng.range(1, 30) as f64 / 100.0,
                    },
                    rng.range(10, 300),
                ),
                5 | 6 => (Fault::ManagementDown, rng.range(5, 600)),
                7 | 8 => (
                    Fault::GatewayDown {
                        gw,
                        corrupt: rng.chance(0.25),
                    },
                    rng.range(2, 60),
                ),
                _ => (Fault::DnsFailure, rng.range(10, 600)),
            };
            let until = (from + len).min(final_repair);
            windows.push(Window {
                from: Duration::from_secs(from),
                until: Duration::from_secs(until),
                fault,
            });
        }
        // A gateway restarted while it is cut off: the case fail static is for.
        if rng.chance(0.7) {
            let gw = rng.range(0, 1) as usize;
            // (Runs shorter than 17 minutes start it at one minute.)
            let from = rng.range(60, final_repair.saturating_sub(700).max(60));
            windows.push(Window {
                from: Duration::from_secs(from),
                until: Duration::from_secs(from + rng.range(200, 600)),
                fault: Fault::Partition { gw },
            });
            let down = from + rng.range(20, 100);
            windows.push(Window {
                from: Duration::from_secs(down),
                until: Duration::from_secs(down + rng.range(2, 30)),
                fault: Fault::GatewayDown {
                    gw,
                    corrupt: rng.chance(0.2),
                },
            });
        }
        let mut changes: Vec<Duration> = (0..rng.range(2, 8))
            .map(|_| Duration::from_secs(rng.range(20, final_repair - 10)))
            .collect();
        changes.sort();
        windows.sort_by_key(|w| w.from);
        // Drawn last, so the rest of the plan is what it was before.
        let buffer_bytes = if rng.range(0, 3) == 0 {
            SMALL_BUFFER_BYTES
        } else {
            portcullis_core::telemetry::uploader::DEFAULT_BUFFER_BYTES
        };
        Plan {
            seed,
            backup,
            windows,
            changes,
            final_repair: Duration::from_secs(final_repair),
            buffer_bytes,
            duration,
        }
    }

    /// The state at `t`.
    pub fn state_at(&self, t: Duration) -> State {
        let mut s = State::default();
        if t >= self.final_repair {
            return s;
        }
        for w in self.windows.iter().filter(|w| w.from <= t && t < w.until) {
            match w.fault {
                Fault::Partition { gw } => s.partitioned[gw] = true,
                Fault::Latency { gw, ms } => s.latency_ms[gw] = s.latency_ms[gw].max(ms),
                Fault::Loss { gw, rate } => s.loss[gw] = s.loss[gw].max(rate),
                Fault::ManagementDown => s.management_down = true,
                Fault::GatewayDown { gw, corrupt } => {
                    s.gateway_down[gw] = true;
                    s.corrupt[gw] |= corrupt;
                }
                Fault::DnsFailure => s.dns_failure = true,
            }
        }
        s
    }
}
