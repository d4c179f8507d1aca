//! What the guards decide, applied: a rule aborted by its guard, a rule retired by its
//! error budget, and the service guard that stops everything.

use std::time::Duration;

use super::{Chaos, Event};
use crate::decision::RuleState;
use crate::outcome::{AbortInfo, Breach, ServiceGuardSnapshot, Tally};

impl Chaos {
    /// A guard found `breach`: the rule injects nothing more.
    pub(crate) fn abort_breach(&self, rule: &RuleState, breach: Breach) {
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
        let max = rule.outcomes.budget().map_or(0, |b| b.figures().0);
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
        if self.service_guard().is_set() {
            self.service_guard_judge(false);
        }
    }

    /// The organic traffic the service guard judges: the server layers' responses, or, in
    /// a process without one, every point's.
    fn organic(&self, window: Duration) -> Tally {
        let all = self.steady_states();
        let has_server = all.iter().any(|s| s.point() == "server");
        let mut seen = Tally::default();
        for s in all.iter().filter(|s| !has_server || s.point() == "server") {
            s.add_organic(window, &mut seen);
        }
        seen
    }

    #[cold]
    fn service_guard_judge(&self, always: bool) -> Option<ServiceGuardSnapshot> {
        let compiled = self.compiled();
        let g = compiled.set.guard.as_ref()?;
        let sg = self.service_guard();
        let (seen, breach) = sg.judge(g, always, self.is_killed(), |w| self.organic(w))?;
        if let Some(b) = breach {
            self.trip_service_guard(b);
        }
        Some(sg.snapshot(g, &seen))
    }

    /// The automatic big red button: every rule aborted, the kill switch on.
    #[cold]
    fn trip_service_guard(&self, breach: Breach) {
        let reason = format!("service guard breached: {breach}");
        tracing::error!(target: "chaos", %breach, "service guard breached: every rule aborted, kill switch on");
        self.service_guard().trip(reason.clone(), breach.clone());
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
