//! What one rule did to the requests it matched, and what follows from it: its cohorts,
//! the guard that judges them, its error budget and its ramp.
//!
//! Recording takes no lock and allocates nothing after a rule's first matched request
//! (its cohorts are made then). The guard is judged at most once per tick (a tenth of its
//! window, at most a second), by whichever request or reader finds the tick due.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::ErrorBudget;
use super::cohorts::{Cohort, Cohorts, CohortsSnapshot, DEFAULT_SPAN};
use super::guard::{Breach, GuardState, cohorts_breach, tick_of};
use super::ramp::{Ramp, RampStatus};
use crate::rules::{Guard, Rate, Rule};

/// A rule's outcomes and everything judged from them.
pub(crate) struct RuleOutcomes {
    /// When the rule was loaded.
    base: Instant,
    span: Duration,
    tick: Duration,
    guard: Option<Guard>,
    budget: Option<ErrorBudget>,
    ramp: Option<Ramp>,
    cohorts: OnceLock<Box<Cohorts>>,
    /// When the guard is next judged (nanoseconds since `base`).
    next_judgement: AtomicU64,
}

impl fmt::Debug for RuleOutcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleOutcomes")
            .field("span", &self.span)
            .field("guard", &self.guard)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl RuleOutcomes {
    pub(crate) fn new(rule: &Rule, base: Instant) -> RuleOutcomes {
        let span = rule.guard.as_ref().map_or(DEFAULT_SPAN, |g| g.window.0);
        RuleOutcomes {
            base,
            span,
            tick: tick_of(span),
            guard: rule.guard.clone(),
            budget: rule.max_errors.map(ErrorBudget::new),
            ramp: rule
                .ramp
                .as_ref()
                .map(|r| Ramp::new(r.steps.clone(), r.every.0, rule.guard.is_some())),
            cohorts: OnceLock::new(),
            next_judgement: AtomicU64::new(0),
        }
    }

    fn cohorts(&self) -> &Cohorts {
        self.cohorts
            .get_or_init(|| Box::new(Cohorts::new(self.base.into_std(), self.span)))
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.base)
    }

    /// Records one matched request's user-visible outcome.
    #[inline]
    pub(crate) fn record(&self, cohort: Cohort, now: Instant, latency: Duration, error: bool) {
        self.cohorts()
            .record(cohort, now.into_std(), latency, error);
    }

    /// The experiment cohort's requests since the rule was loaded.
    fn experiment_total(&self) -> u64 {
        self.cohorts
            .get()
            .map_or(0, |c| c.totals(Cohort::Experiment).0)
    }

    // ---- the error budget

    /// The error budget, if the rule has one (`max_errors`).
    #[inline]
    pub(crate) fn budget(&self) -> Option<&ErrorBudget> {
        self.budget.as_ref()
    }

    /// Whether the error budget (if any) is spent: the rule is retired.
    #[inline]
    pub(crate) fn budget_spent(&self) -> bool {
        self.budget.as_ref().is_some_and(ErrorBudget::spent)
    }

    /// Gives back a unit of the budget (if any); an `error` spends it. `true` when that
    /// spent the last of it.
    pub(crate) fn settle(&self, error: bool) -> bool {
        self.budget.as_ref().is_some_and(|b| b.settle(error))
    }

    // ---- the ramp

    /// The rate in force now, or `None` without a ramp.
    #[inline]
    pub(crate) fn ramp_rate(&self, now: Instant) -> Option<Rate> {
        Some(self.ramp.as_ref()?.rate(self.elapsed(now)))
    }

    /// The ramp's progress.
    pub(crate) fn ramp_status(&self, now: Instant) -> Option<RampStatus> {
        let min = self.guard.as_ref().map_or(0, |g| g.min_requests);
        Some(
            self.ramp
                .as_ref()?
                .status(self.elapsed(now), self.experiment_total(), min),
        )
    }

    // ---- the guard

    /// Whether a judgement is due at `now`; the caller that gets `true` judges.
    #[inline]
    pub(crate) fn judgement_due(&self, now: Instant) -> bool {
        if self.guard.is_none() {
            return false;
        }
        let at = super::ns(self.elapsed(now));
        let next = self.next_judgement.load(Ordering::Acquire);
        at >= next
            && self
                .next_judgement
                .compare_exchange(
                    next,
                    at + super::ns(self.tick),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Judges the cohorts of the window ending at `now`: a breach, if any. When the guard
    /// holds, the ramp may move on.
    pub(crate) fn judge(&self, now: Instant) -> Option<Breach> {
        let g = self.guard.as_ref()?;
        if let Some(c) = self.cohorts.get() {
            let (exp, ctl) = c.windows(now.into_std());
            if let Some(b) = cohorts_breach(g, &exp, &ctl) {
                return Some(b);
            }
        }
        if let Some(r) = &self.ramp {
            r.advance(self.elapsed(now), self.experiment_total(), g.min_requests);
        }
        None
    }

    /// The guard's state as the window ending at `now` shows it.
    pub(crate) fn guard_state(&self, now: Instant, aborted: bool) -> GuardState {
        let Some(g) = &self.guard else {
            return GuardState::None;
        };
        if aborted {
            return GuardState::Breached;
        }
        let seen = self
            .cohorts
            .get()
            .map_or(0, |c| c.windows(now.into_std()).0.requests);
        if seen < g.min_requests {
            GuardState::TooFewRequests
        } else {
            GuardState::Holding
        }
    }

    /// The cohorts' figures over the window ending at `now`.
    pub(crate) fn snapshot(&self, now: Instant) -> CohortsSnapshot {
        match self.cohorts.get() {
            Some(c) => c.snapshot(now.into_std(), self.span),
            None => CohortsSnapshot::empty(self.span),
        }
    }
}
