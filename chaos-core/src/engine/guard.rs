//! What the guards decide, applied: a rule aborted by its guard, a rule retired by its
//! error budget, and the service guard that stops everything.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Chaos, Event};
use crate::decision::{AbortInfo, Breach, GuardState, RuleState, absolute_breach};
use crate::rules::{Dur, Guard};
use crate::window::{Sum, quantile};

/// The service guard's settings and state.
pub(crate) struct ServiceGuard {
    base: Instant,
    /// When it is next judged (nanoseconds since `base`); `u64::MAX`: no guard.
    next: std::sync::atomic::AtomicU64,
    breach: std::sync::Mutex<Option<AbortInfo>>,
}

impl ServiceGuard {
    pub(crate) fn new() -> ServiceGuard {
        ServiceGuard {
            base: Instant::now(),
            next: std::sync::atomic::AtomicU64::new(u64::MAX),
            breach: std::sync::Mutex::new(None),
        }
    }

    /// Arms (or disarms) the judgements for a new rules document.
    pub(crate) fn reset(&self, guard: Option<&Guard>) {
        self.next.store(
            if guard.is_some() { 0 } else { u64::MAX },
            Ordering::Release,
        );
    }

    /// Forgets a breach (the kill switch was turned off by hand).
    pub(crate) fn clear(&self) {
        *self.breach.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn due(&self, tick: Duration) -> bool {
        let next = self.next.load(Ordering::Acquire);
        if next == u64::MAX {
            return false;
        }
        let at = self.base.elapsed().as_nanos() as u64;
        at >= next
            && self
                .next
                .compare_exchange(
                    next,
                    at + tick.as_nanos() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

/// The service guard in a snapshot: the organic traffic it judges.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServiceGuardSnapshot {
    /// The guard.
    pub guard: Guard,
    /// Its state.
    pub state: GuardState,
    /// Organic responses in the window.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Errors over responses.
    pub error_rate: f64,
    /// The organic p99 in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<Dur>,
    /// The breach that stopped everything, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach: Option<AbortInfo>,
}

impl Chaos {
    /// A guard found `breach`: the rule injects nothing more.
    pub(crate) fn abort_breach(&self, rule: &Arc<RuleState>, breach: Breach) {
        let reason = format!("guard breached: {breach}");
        self.abort_state(rule, AbortInfo::new(reason, Some(breach)), "guard");
    }

    /// Aborts a rule's state; an event, a warning and a count (under `code`: `guard`,
    /// `service_guard`, `manual`) the first time.
    pub(crate) fn abort_state(&self, rule: &RuleState, info: AbortInfo, code: &'static str) {
        let reason = info.reason.clone();
        let breach = info.breach.clone();
        if rule.abort(info) {
            self.bump_version();
            tracing::warn!(target: "chaos", rule = &*rule.id, reason, "rule aborted");
            self.count_abort(&rule.id, code);
            self.events().emit(Event::RuleAborted {
                rule: rule.id.to_string(),
                reason,
                breach,
            });
        }
    }

    /// A rule's error budget is spent: it retires.
    pub(crate) fn budget_spent(&self, rule: &RuleState) {
        self.bump_version();
        let (max, _) = rule.watch.budget().unwrap_or_default();
        tracing::info!(target: "chaos", rule = &*rule.id, max_errors = max, "error budget spent: rule retired");
        self.count_abort(&rule.id, "budget");
        self.events().emit(Event::RuleRetired {
            rule: rule.id.to_string(),
            reason: format!("error budget spent: {max} user-visible errors"),
        });
    }

    /// Judges the service guard when it is due.
    #[inline]
    pub(crate) fn service_guard_tick(&self) {
        if self.service_guard().next.load(Ordering::Relaxed) == u64::MAX {
            return;
        }
        self.service_guard_judge(false);
    }

    /// The organic traffic the service guard judges: the server layers' responses, or, in
    /// a process without one, every point's.
    fn organic(&self, window: Duration) -> Sum {
        let all = self.steady_states();
        let servers: Vec<_> = all.iter().filter(|s| s.point() == "server").collect();
        let mut sum = Sum::default();
        let from = if servers.is_empty() {
            all.iter().collect()
        } else {
            servers
        };
        for s in from {
            s.add_organic(window, &mut sum);
        }
        sum
    }

    #[cold]
    fn service_guard_judge(&self, always: bool) -> Option<ServiceGuardSnapshot> {
        let compiled = self.compiled();
        let g = compiled.set.guard.as_ref()?;
        let tick = (g.window.0 / 10).min(Duration::from_secs(1));
        let judging = self.service_guard().due(tick);
        if !judging && !always {
            return None;
        }
        let sum = self.organic(g.window.0);
        let rate = sum.error_rate();
        let p99 = quantile(&sum.hist, 0.99);
        let breach = (judging && sum.requests >= g.min_requests && !self.is_killed())
            .then(|| absolute_breach(g, &sum))
            .flatten();
        if let Some(b) = breach {
            self.trip_service_guard(b);
        }
        let breach = self
            .service_guard()
            .breach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = if breach.is_some() {
            GuardState::Breached
        } else if sum.requests < g.min_requests {
            GuardState::TooFewRequests
        } else {
            GuardState::Holding
        };
        Some(ServiceGuardSnapshot {
            guard: g.clone(),
            state,
            requests: sum.requests,
            errors: sum.errors,
            error_rate: rate,
            p99: p99.map(Dur),
            breach,
        })
    }

    /// The automatic big red button: every rule aborted, the kill switch on.
    #[cold]
    fn trip_service_guard(&self, breach: Breach) {
        let reason = format!("service guard breached: {breach}");
        tracing::error!(target: "chaos", %breach, "service guard breached: every rule aborted, kill switch on");
        *self
            .service_guard()
            .breach
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some(AbortInfo::new(reason.clone(), Some(breach.clone())));
        let compiled = self.compiled();
        for r in &compiled.rules {
            self.abort_state(
                &r.state,
                AbortInfo::new(reason.clone(), Some(breach.clone())),
                "service_guard",
            );
        }
        self.kill();
    }

    /// The service guard as it stands (judged now, when due), for the snapshot.
    pub(crate) fn service_guard_snapshot(&self) -> Option<ServiceGuardSnapshot> {
        self.service_guard_judge(true)
    }
}
