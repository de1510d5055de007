//! The five fail-static invariants and telemetry delivery, checked on a run's
//! trace.
//!
//! 1. While a gateway runs, no client request fails or gets a different answer
//!    because the management plane is unreachable.
//! 2. A gateway restarted while cut off from the management plane serves, with a
//!    backup, the last configuration it applied; without one it serves nothing
//!    (503, not ready), never an empty or partial configuration.
//! 3. The revision a gateway serves never goes backwards.
//! 4. After the last repair, every gateway serves the latest revision within the
//!    poll interval plus the backoff bound, and its heartbeats resume.
//! 7. Content is identified by its digest, not only its revision: a gateway
//!    never puts in force, at a revision, content other than what it was given
//!    for that revision before (the store held one content per revision, so
//!    two digests for one revision mean content the store never held), and
//!    after the last repair every gateway holds exactly the store's current
//!    content (its applied digest is the store's digest for it).
//! 5. A torn or corrupt backup is never served.
//! 6. Every request a gateway answered is counted exactly once at the management
//!    plane, unless the upload buffer overflowed and the drop was counted. At the
//!    end (the records read back through the analytics API): no request's record
//!    is stored twice; every request answered (any status) and not followed by a
//!    crash of its gateway is stored, but for as many as the gateways reported
//!    dropped; a request followed by a crash may be missing (its record may have
//!    been in memory), never stored twice.

use std::collections::BTreeMap;
use std::fmt;

use crate::hosts::traffic::request_path;
use crate::trace::{Answer, Event};

/// Which invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// 1: no request fails because of the outage.
    KeepsServing = 1,
    /// 2: a restart while cut off serves the backup, or nothing.
    RestartServesBackupOrNothing = 2,
    /// 3: revisions never go backwards.
    Monotonic = 3,
    /// 4: convergence and heartbeats after the last repair.
    Converges = 4,
    /// 5: a damaged backup is never served.
    NoDamagedBackup = 5,
    /// 6: each answered request is stored once at the management plane, or
    /// counted as dropped.
    TelemetryExactlyOnce = 6,
    /// 7: one content per revision, and the store's content at the end.
    ContentMatches = 7,
    /// 8 (shared limits): the replicas together never admit more than the
    /// limit in exact mode.
    SharedLimit = 8,
    /// 9 (shared limits): fail open never fails a request because of the
    /// store; fail closed never admits one without it.
    FailureRule = 9,
    /// 10 (shared limits): after the last repair, the store decides again.
    StoreRecovers = 10,
}

/// One broken invariant, with what showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub at_ms: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} ({:?}) at {:.3}s: {}",
            self.invariant as u8,
            self.invariant,
            self.at_ms as f64 / 1000.0,
            self.detail
        )
    }
}

/// What the checks need besides the trace.
#[derive(Debug, Clone)]
pub struct Facts {
    /// When every fault was healed for good.
    pub final_repair_ms: u64,
    /// How long after that (or after the last change) every gateway must serve
    /// the latest revision.
    pub converge_bound_ms: u64,
    /// How long a gateway may take after its start to load its backup.
    pub start_grace_ms: u64,
    /// The management plane's revision at the end.
    pub latest: u64,
    /// The digest of the content the management plane would send each gateway
    /// at the end.
    pub latest_digests: Vec<Option<String>>,
    /// Each gateway's last heartbeat, in milliseconds of simulated time.
    pub last_heartbeat_ms: Vec<Option<u64>>,
    /// When the run ended.
    pub end_ms: u64,
    /// What the management plane stored of the request records (`None`: not
    /// read, the run was too short; `Err`: could not be read).
    pub telemetry: Option<Result<TelemetryFacts, String>>,
}

/// The request records the management plane stored, read at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryFacts {
    /// The records stamped before this (simulated milliseconds) were read.
    pub to_ms: u64,
    /// How many records of each request path are stored.
    pub stored: BTreeMap<String, u32>,
    /// Records the gateways reported dropped (`dropped` of `/analytics/requests`).
    pub dropped: u64,
}

/// A request sent this long before the end of the records read has had its
/// record stamped before that end (the client gives up after 5 s).
pub const STAMP_MARGIN_MS: u64 = 5_000;

/// Examples shown in a violation's detail.
const EXAMPLES: usize = 5;

/// Per gateway, what the trace has said so far.
#[derive(Debug, Default, Clone)]
struct Gw {
    up: bool,
    started_ms: u64,
    starts: u64,
    backup: bool,
    /// Whether the gateway put a configuration in force since it started.
    ready_since: Option<u64>,
    cut: bool,
    /// While cut off since a restart: the cut window's start restart number.
    restarted_while_cut: bool,
    /// The last revision put in force, over every start.
    last_applied: Option<u64>,
    /// The digest of the configuration put in force last.
    last_digest: Option<String>,
    /// The digest seen at each revision put in force.
    digests: BTreeMap<u64, Option<String>>,
    /// The last revision put in force before the current start.
    applied_before_start: Option<u64>,
    /// The backup file was damaged and no configuration was applied (and so
    /// saved) since.
    backup_damaged: bool,
    last_answer_rev: Option<u64>,
}

/// Checks every invariant; the violations, in time order (empty: all hold).
pub fn check(events: &[(u64, Event)], facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut gws = vec![Gw::default(); 2];
    // Starts and crashes, to tell whether a gateway ran through a request.
    let lifecycle: Vec<(u64, usize)> = events
        .iter()
        .filter_map(|(ms, e)| match e {
            Event::GatewayStarted { gw, .. } | Event::GatewayCrashed { gw } => Some((*ms, *gw)),
            _ => None,
        })
        .collect();
    let ran_through = |gw: usize, from: u64, to: u64| {
        !lifecycle
            .iter()
            .any(|&(ms, g)| g == gw && ms >= from && ms <= to)
    };
    let mut last_change_ms = 0;
    let mut violate = |invariant, at_ms, detail: String| {
        out.push(Violation {
            invariant,
            at_ms,
            detail,
        })
    };
    for (ms, event) in events {
        let ms = *ms;
        match event {
            Event::GatewayStarted { gw, backup } => {
                let g = &mut gws[*gw];
                g.up = true;
                g.started_ms = ms;
                g.starts += 1;
                g.backup = *backup;
                g.ready_since = None;
                g.applied_before_start = g.last_applied;
                g.restarted_while_cut = g.cut && g.starts > 1;
            }
            Event::BackupCorrupted { gw } => gws[*gw].backup_damaged = true,
            Event::GatewayCrashed { gw } => gws[*gw].up = false,
            Event::Cut { gw, cut } => {
                let g = &mut gws[*gw];
                g.cut = *cut;
                if !cut {
                    g.restarted_while_cut = false;
                }
            }
            Event::Applied { gw, rev, digest } => {
                let g = &mut gws[*gw];
                match g.digests.get(rev) {
                    Some(seen) if seen != digest => violate(
                        Invariant::ContentMatches,
                        ms,
                        format!(
                            "gw{gw} put revision {rev} in force with digest {digest:?}, earlier with {seen:?}"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        g.digests.insert(*rev, digest.clone());
                    }
                }
                g.last_digest = digest.clone();
                if let Some(last) = g.last_applied {
                    if *rev < last {
                        violate(
                            Invariant::Monotonic,
                            ms,
                            format!("gw{gw} put revision {rev} in force after {last}"),
                        );
                    }
                }
                if g.restarted_while_cut {
                    if !g.backup {
                        violate(
                            Invariant::RestartServesBackupOrNothing,
                            ms,
                            format!("gw{gw} has no backup, was restarted while cut off, and put revision {rev} in force"),
                        );
                    } else if g.backup_damaged {
                        violate(
                            Invariant::NoDamagedBackup,
                            ms,
                            format!("gw{gw} was restarted with a damaged backup while cut off and put revision {rev} in force"),
                        );
                    } else if Some(*rev) != g.applied_before_start {
                        violate(
                            Invariant::RestartServesBackupOrNothing,
                            ms,
                            format!(
                                "gw{gw} was restarted while cut off and put revision {rev} in force, not the last it applied ({:?})",
                                g.applied_before_start
                            ),
                        );
                    }
                }
                g.last_applied = Some(g.last_applied.map_or(*rev, |l| l.max(*rev)));
                // An applied configuration is saved, replacing a damaged file.
                g.backup_damaged = false;
                g.ready_since.get_or_insert(ms);
            }
            Event::Answer {
                gw,
                sent_ms,
                answer,
                ..
            } => {
                let g = &mut gws[*gw];
                let ran = g.up && *sent_ms >= g.started_ms && ran_through(*gw, *sent_ms + 1, ms);
                if !ran {
                    continue;
                }
                let ready = g.ready_since.is_some_and(|r| r <= *sent_ms);
                if let Answer::Ok { rev } = answer {
                    if let Some(last) = g.last_answer_rev {
                        if *rev < last {
                            violate(
                                Invariant::Monotonic,
                                ms,
                                format!("gw{gw} answered with revision {rev} after {last}"),
                            );
                        }
                    }
                    g.last_answer_rev = Some(g.last_answer_rev.map_or(*rev, |l| l.max(*rev)));
                }
                if g.restarted_while_cut {
                    let expected_backup =
                        g.backup && !g.backup_damaged && g.applied_before_start.is_some();
                    match answer {
                        Answer::Status(503) if !expected_backup => {}
                        Answer::Status(503) if *sent_ms < g.started_ms + facts.start_grace_ms => {}
                        Answer::Ok { rev } if expected_backup && Some(*rev) == g.applied_before_start => {}
                        Answer::Ok { rev } if g.backup_damaged => violate(
                            Invariant::NoDamagedBackup,
                            ms,
                            format!("gw{gw} restarted with a damaged backup while cut off answered with revision {rev}"),
                        ),
                        other => violate(
                            Invariant::RestartServesBackupOrNothing,
                            ms,
                            format!(
                                "gw{gw} restarted while cut off (backup: {}, last applied {:?}) answered {other:?}",
                                g.backup, g.applied_before_start
                            ),
                        ),
                    }
                    continue;
                }
                if !ready {
                    continue;
                }
                if !matches!(answer, Answer::Ok { .. }) {
                    violate(
                        Invariant::KeepsServing,
                        ms,
                        format!(
                            "gw{gw} had a configuration in force but answered {answer:?} (request sent at {:.3}s{})",
                            *sent_ms as f64 / 1000.0,
                            if g.cut { ", cut off from the management plane" } else { "" }
                        ),
                    );
                }
                if let Answer::Ok { rev } = answer {
                    let deadline =
                        last_change_ms.max(facts.final_repair_ms) + facts.converge_bound_ms;
                    if *sent_ms > deadline && *rev != facts.latest {
                        violate(
                            Invariant::Converges,
                            ms,
                            format!(
                                "gw{gw} still answers with revision {rev}, latest is {}",
                                facts.latest
                            ),
                        );
                    }
                }
            }
            Event::Changed { .. } => last_change_ms = ms,
            _ => {}
        }
    }
    // Convergence and heartbeats, at the end.
    let deadline = last_change_ms.max(facts.final_repair_ms) + facts.converge_bound_ms;
    if facts.end_ms > deadline {
        for (gw, g) in gws.iter().enumerate() {
            if g.last_applied != Some(facts.latest) {
                out.push(Violation {
                    invariant: Invariant::Converges,
                    at_ms: facts.end_ms,
                    detail: format!(
                        "gw{gw} ends with revision {:?} in force, latest is {}",
                        g.last_applied, facts.latest
                    ),
                });
            }
            let store_digest = facts.latest_digests.get(gw).cloned().flatten();
            if store_digest.is_none() || g.last_digest != store_digest {
                out.push(Violation {
                    invariant: Invariant::ContentMatches,
                    at_ms: facts.end_ms,
                    detail: format!(
                        "gw{gw} ends with digest {:?} in force, the store's is {store_digest:?}",
                        g.last_digest
                    ),
                });
            }
            let beat = facts.last_heartbeat_ms.get(gw).copied().flatten();
            if beat.is_none_or(|b| b < facts.final_repair_ms.max(last_change_ms)) {
                out.push(Violation {
                    invariant: Invariant::Converges,
                    at_ms: facts.end_ms,
                    detail: format!(
                        "gw{gw}'s heartbeats did not resume after the last repair (last at {:?} ms)",
                        beat
                    ),
                });
            }
        }
    }
    check_telemetry(events, facts, &mut out);
    out.sort_by_key(|v| v.at_ms);
    out
}

/// Invariant 6, on the records read at the end.
fn check_telemetry(events: &[(u64, Event)], facts: &Facts, out: &mut Vec<Violation>) {
    let Some(telemetry) = &facts.telemetry else {
        return;
    };
    let mut violate = |detail: String| {
        out.push(Violation {
            invariant: Invariant::TelemetryExactlyOnce,
            at_ms: facts.end_ms,
            detail,
        })
    };
    let t = match telemetry {
        Ok(t) => t,
        Err(e) => {
            violate(format!(
                "the request records stored by the management plane could not be read: {e}"
            ));
            return;
        }
    };
    let crashes: Vec<(u64, usize)> = events
        .iter()
        .filter_map(|(ms, e)| match e {
            Event::GatewayCrashed { gw } => Some((*ms, *gw)),
            _ => None,
        })
        .collect();
    // Every request sent, with when and what it got.
    let mut sent: BTreeMap<String, (u64, &Answer)> = BTreeMap::new();
    let mut missing = Vec::new();
    for (_, event) in events {
        let Event::Answer {
            gw,
            n,
            sent_ms,
            answer,
        } = event
        else {
            continue;
        };
        let path = request_path(*gw, *n);
        let stored = t.stored.get(&path).copied().unwrap_or(0);
        let answered = !matches!(answer, Answer::Failed);
        let crashed_after = crashes.iter().any(|&(ms, g)| g == *gw && ms >= *sent_ms);
        if answered && stored == 0 && !crashed_after && sent_ms + STAMP_MARGIN_MS <= t.to_ms {
            missing.push((path.clone(), *sent_ms, answer));
        }
        sent.insert(path, (*sent_ms, answer));
    }
    // (a) and (c): at most once, always.
    let twice: Vec<(&String, u32)> = t
        .stored
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(p, &c)| (p, c))
        .collect();
    if !twice.is_empty() {
        let extra: u32 = twice.iter().map(|(_, c)| c - 1).sum();
        let examples: Vec<String> = twice
            .iter()
            .take(EXAMPLES)
            .map(|(p, c)| match sent.get(*p) {
                Some((ms, answer)) => format!(
                    "{p} ×{c} (sent at {:.3}s, answered {answer:?})",
                    *ms as f64 / 1000.0
                ),
                None => format!("{p} ×{c}"),
            })
            .collect();
        violate(format!(
            "{} requests are stored more than once ({extra} extra records): {}",
            twice.len(),
            examples.join(", ")
        ));
    }
    // (b): every answered request not followed by a crash is stored, but for
    // the drops counted.
    if missing.len() as u64 > t.dropped {
        let examples: Vec<String> = missing
            .iter()
            .take(EXAMPLES)
            .map(|(p, ms, answer)| {
                format!(
                    "{p} (sent at {:.3}s, answered {answer:?})",
                    *ms as f64 / 1000.0
                )
            })
            .collect();
        violate(format!(
            "{} answered requests whose gateway did not crash afterwards are not stored, \
             more than the {} records the gateways reported dropped: {}",
            missing.len(),
            t.dropped,
            examples.join(", ")
        ));
    }
}
