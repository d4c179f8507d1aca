//! The engine at one moment, for the admin API and for tests.

use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::time::Instant;

use super::Chaos;
use crate::outcome::{AbortInfo, CohortsSnapshot, GuardState, RampStatus, ServiceGuardSnapshot};
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
                let w = &st.outcomes;
                // A reader judges a guard that is due, as a request would.
                if !killed
                    && !st.is_aborted()
                    && w.judgement_due(now)
                    && let Some(b) = w.judge(now)
                {
                    self.abort_breach(&c.state, b);
                }
                let hits = st.rule_scope.hits.load(Ordering::Relaxed);
                let state = if killed {
                    RuleStatus::Killed
                } else if st.is_aborted() {
                    RuleStatus::Aborted
                } else if now >= st.expires_at {
                    RuleStatus::Expired
                } else if spec.max_hits.is_some_and(|m| hits >= m) || w.budget_spent() {
                    RuleStatus::Retired
                } else {
                    RuleStatus::Active
                };
                let abort = st.abort_info();
                RuleSnapshot {
                    rule: spec.clone(),
                    state,
                    abort_reason: abort.as_ref().map(|a| a.reason.clone()),
                    abort,
                    expires_in: (!spec.lives_with_guard())
                        .then(|| Dur(whole(st.expires_at.saturating_duration_since(now)))),
                    counters: RuleCounters {
                        matched: st.matched.load(Ordering::Relaxed),
                        injected: st.injected.load(Ordering::Relaxed),
                        shadowed: st.shadowed.load(Ordering::Relaxed),
                        skipped_by_limit: st.skipped_by_limit.load(Ordering::Relaxed),
                        expired: st.expired_hits.load(Ordering::Relaxed),
                        active: st.active.load(Ordering::Relaxed),
                        injected_untagged: hits,
                    },
                    guard: w.guard_state(now, st.is_aborted()),
                    cohorts: w.snapshot(now),
                    ramp: w.ramp_status(now),
                    budget: w.budget().map(|b| {
                        let (max_errors, spent) = b.figures();
                        Budget { max_errors, spent }
                    }),
                }
            })
            .collect();
        let s = &self.shared.stats;
        Snapshot {
            version: self.version(),
            killed,
            allow_directives: compiled.set.allow_directives,
            service_guard: self.service_guard_snapshot(),
            rules,
            known_targets: self.known_targets(),
            aborts: self
                .abort_counts()
                .into_iter()
                .map(|(rule, reason, count)| AbortCount {
                    rule,
                    reason,
                    count,
                })
                .collect(),
            header_rejected_by_reason: s
                .headers
                .by_code()
                .into_iter()
                .map(|(reason, count)| ReasonCount { reason, count })
                .collect(),
            last_reload: self.last_reload(),
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

/// A time left, as a person reads it: whole seconds, or whole milliseconds under a second.
fn whole(d: std::time::Duration) -> std::time::Duration {
    if d >= std::time::Duration::from_secs(1) {
        std::time::Duration::from_secs(d.as_secs())
    } else {
        std::time::Duration::from_millis(d.as_millis() as u64)
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
    /// The service guard, if the rules document has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_guard: Option<ServiceGuardSnapshot>,
    /// Each rule, in order.
    pub rules: Vec<RuleSnapshot>,
    /// The points and targets this process has ([`Chaos::known_targets`]): where a rule
    /// can fire here.
    pub known_targets: Vec<crate::known::KnownTarget>,
    /// Engine-wide counters.
    pub stats: EngineStats,
    /// The watched file's last reload ([`Chaos::last_reload`]): loaded or refused, the
    /// error, when. `null` when no file is watched.
    pub last_reload: Option<super::reload::Reload>,
    /// Rules stopped since the process started, by rule and reason (`guard`,
    /// `service_guard`, `budget`, `manual`; `rule: "*"` with `kill_switch` for each time
    /// the kill switch turned on). A rule removed keeps its counts.
    pub aborts: Vec<AbortCount>,
    /// Parts of chaos headers refused, by their stable code (as `chaos.header_rejected`
    /// counts them): every code, 0 when never seen, so a rate over it starts from zero.
    pub header_rejected_by_reason: Vec<ReasonCount>,
}

/// How often a rule stopped for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AbortCount {
    /// The rule, or `*` for the kill switch.
    pub rule: String,
    /// Why: `guard`, `service_guard`, `budget`, `manual` or `kill_switch`.
    pub reason: &'static str,
    /// How many times.
    pub count: u64,
}

/// How often something was refused for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReasonCount {
    /// The stable code.
    pub reason: &'static str,
    /// How many times.
    pub count: u64,
}

/// One rule with its state and counters.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RuleSnapshot {
    /// The rule as loaded.
    pub rule: Rule,
    /// Its state.
    pub state: RuleStatus,
    /// Why it was aborted, if it was (the sentence of [`abort`](Self::abort)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Its abort: why, the guard's breach (condition, observed value, threshold), when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortInfo>,
    /// Time left before it expires, in whole seconds (milliseconds under one second);
    /// `None` (`null`) for a rule held by a test's guard with no expiry of its own, which
    /// lives as long as the guard.
    pub expires_in: Option<Dur>,
    /// Its counters.
    pub counters: RuleCounters,
    /// Its guard's state.
    pub guard: GuardState,
    /// What it did to the requests it matched: its experiment and control cohorts, over
    /// its guard's window (else the last 60 s).
    pub cohorts: CohortsSnapshot,
    /// Its ramp's progress, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampStatus>,
    /// Its error budget, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// A rule's error budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Budget {
    /// The budget: `max_errors`.
    pub max_errors: u64,
    /// User-visible errors of the experiment cohort so far.
    pub spent: u64,
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
    /// It reached `max_hits` (in its rule-wide scope), or spent its error budget.
    Retired,
    /// The kill switch is on.
    Killed,
    /// Its guard (or the service guard) fired, or it was aborted by hand.
    Aborted,
}

/// Counters of one rule, from when it was loaded. For each request that met the rule's
/// conditions, `matched` counts one; then exactly one of: `injected` (or `shadowed` in
/// shadow mode), `skipped_by_limit`, `expired`, or none of them (the request was in the
/// control cohort: the rate, a sequence's pass step or a sticky key left it alone; or the
/// rule had stopped: aborted, its error budget spent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuleCounters {
    /// Requests that met its conditions (point, target, match), whatever then happened.
    pub matched: u64,
    /// Faults injected, tagged requests and untagged together.
    pub injected: u64,
    /// Faults that would have been injected (shadow mode).
    pub shadowed: u64,
    /// Injections skipped by `max_active`, the global `max_active` or `max_hits`.
    pub skipped_by_limit: u64,
    /// Requests matched after the rule expired.
    pub expired: u64,
    /// Injections in flight.
    pub active: u32,
    /// Injections to requests with no scenario tag, counted in the rule-wide scope: the
    /// count `max_hits` retires the rule on. (A tagged request's injections count in its
    /// scenario's scope, so a run of tagged requests leaves this at 0; it was `hits`.)
    /// Counted only for a rule with `max_hits` or a sequence.
    pub injected_untagged: u64,
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
