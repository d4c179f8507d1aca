//! The engine at one moment, for the admin API and for tests.

use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::time::Instant;

use super::Chaos;
use crate::rules::{Dur, Rule};

impl Chaos {
    /// Rules, their state and counters, and the engine's counters, for the admin endpoint
    /// and for tests.
    pub fn snapshot(&self) -> Snapshot {
        let compiled = self.compiled();
        let now = Instant::now();
        let killed = self.is_killed();
        let rules = compiled
            .set
            .rules
            .iter()
            .zip(&compiled.rules)
            .map(|(spec, c)| {
                let st = &c.state;
                let hits = st.rule_scope.hits.load(Ordering::Relaxed);
                let state = if killed {
                    RuleStatus::Killed
                } else if st.is_aborted() {
                    RuleStatus::Aborted
                } else if now >= st.expires_at {
                    RuleStatus::Expired
                } else if spec.max_hits.is_some_and(|m| hits >= m) {
                    RuleStatus::Retired
                } else {
                    RuleStatus::Active
                };
                RuleSnapshot {
                    rule: spec.clone(),
                    state,
                    abort_reason: st.abort_reason(),
                    expires_in: Dur(st.expires_at.saturating_duration_since(now)),
                    counters: RuleCounters {
                        matched: st.matched.load(Ordering::Relaxed),
                        injected: st.injected.load(Ordering::Relaxed),
                        shadowed: st.shadowed.load(Ordering::Relaxed),
                        skipped_by_limit: st.skipped_by_limit.load(Ordering::Relaxed),
                        expired: st.expired_hits.load(Ordering::Relaxed),
                        active: st.active.load(Ordering::Relaxed),
                        hits,
                    },
                }
            })
            .collect();
        let s = &self.shared.stats;
        Snapshot {
            version: self.version(),
            killed,
            allow_directives: compiled.set.allow_directives,
            rules,
            stats: EngineStats {
                injected: s.injected.load(Ordering::Relaxed),
                active: self.shared.global_active.load(Ordering::Relaxed),
                header_rejected: s.headers.header_rejected.load(Ordering::Relaxed),
                signature_rejected: s.headers.signature_rejected.load(Ordering::Relaxed),
                directives_refused: s.headers.directives_refused.load(Ordering::Relaxed),
                reloads: s.reloads.load(Ordering::Relaxed),
                reload_failures: s.reload_failures.load(Ordering::Relaxed),
            },
        }
    }
}

/// The engine at one moment: see [`Chaos::snapshot`]. Serializes to the admin API's JSON.
///
/// ```
/// use chaos_core::{Chaos, Point, RequestView, RuleStatus};
/// use chaos_core::rules::{Abort, Fault, Rule};
///
/// let chaos = Chaos::new();
/// chaos.add_rule(Rule::new("a", "server", Fault::Abort(Abort::http(503))).with_max_hits(1)).unwrap();
/// let _ = chaos.decide(&RequestView::new(Point::Server, ""));
/// let snap = chaos.snapshot();
/// assert_eq!(snap.rules[0].counters.injected, 1);
/// assert_eq!(snap.rules[0].state, RuleStatus::Retired);
/// let json = serde_json::to_value(&snap).unwrap();
/// assert_eq!(json["rules"][0]["state"], "retired");
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The rules version.
    pub version: u64,
    /// Whether the kill switch is on.
    pub killed: bool,
    /// Whether unsigned directives are accepted.
    pub allow_directives: bool,
    /// Each rule, in order.
    pub rules: Vec<RuleSnapshot>,
    /// Engine-wide counters.
    pub stats: EngineStats,
}

/// One rule with its state and counters.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RuleSnapshot {
    /// The rule as loaded.
    pub rule: Rule,
    /// Its state.
    pub state: RuleStatus,
    /// Why it was aborted, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Time left before it expires.
    pub expires_in: Dur,
    /// Its counters.
    pub counters: RuleCounters,
}

/// The state of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RuleStatus {
    /// It may inject.
    Active,
    /// Its TTL has passed.
    Expired,
    /// It reached `max_hits` (in its rule-wide scope).
    Retired,
    /// The kill switch is on.
    Killed,
    /// Its guard fired, or it was aborted by hand.
    Aborted,
}

/// Counters of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuleCounters {
    /// Requests that met its conditions.
    pub matched: u64,
    /// Faults injected.
    pub injected: u64,
    /// Faults that would have been injected (shadow mode).
    pub shadowed: u64,
    /// Injections skipped by `max_active`, the global `max_active` or `max_hits`.
    pub skipped_by_limit: u64,
    /// Requests matched after the rule expired.
    pub expired: u64,
    /// Injections in flight.
    pub active: u32,
    /// Injections counted in the rule-wide scope (requests with no scenario tag).
    pub hits: u64,
}

/// Engine-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EngineStats {
    /// Faults injected, by rules and directives.
    pub injected: u64,
    /// Injections in flight.
    pub active: u32,
    /// Header items ignored as malformed or over a limit.
    pub header_rejected: u64,
    /// Signatures refused.
    pub signature_rejected: u64,
    /// Requests whose directives were ignored as untrusted.
    pub directives_refused: u64,
    /// Successful reloads from a watched file.
    pub reloads: u64,
    /// Reloads refused (bad file); the last good rules stayed.
    pub reload_failures: u64,
}
