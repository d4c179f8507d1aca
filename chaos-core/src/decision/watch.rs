//! What a rule did to the requests it matched, and what follows from it: the experiment
//! and control cohorts, the guard that judges them, the error budget, the ramp.
//!
//! Recording takes no lock and allocates nothing after a rule's first matched request
//! (its windows are made then). The guard is judged at most once per tick (a tenth of its
//! window, at most a second), by whichever request or reader finds the tick due.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::rules::{Dur, Guard, Rate, Rule, Timestamp};
use crate::window::{SECONDS, Sum, Window, quantile, seconds_bucket};

/// The window of a rule without a guard, for the snapshot's figures.
pub(crate) const DEFAULT_SPAN: Duration = Duration::from_secs(60);

/// Which side of the comparison a matched request was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cohort {
    /// The fault was applied (or, in shadow mode, would have been).
    Experiment,
    /// Matched, but the rate, the sticky cohort, the ramp, the schedule or a limit left it
    /// alone.
    Control,
}

/// One cohort's outcomes: exact totals, and a window for the guard.
struct CohortStats {
    window: Window,
    /// Requests by exported latency bucket ([`SECONDS`], then `+Inf`) since the rule was
    /// loaded: their sum is the request count, so the count and the histogram cannot
    /// disagree.
    duration: [AtomicU64; SECONDS.len() + 1],
    /// Their latencies added up, in nanoseconds.
    duration_ns: AtomicU64,
    errors: AtomicU64,
}

impl CohortStats {
    fn new(base: Instant, span: Duration) -> CohortStats {
        CohortStats {
            window: Window::new(base, span),
            duration: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_ns: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn requests(&self) -> u64 {
        self.duration
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    fn histogram(&self) -> DurationHistogram {
        DurationHistogram {
            bounds: &SECONDS,
            counts: self
                .duration
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum: Duration::from_nanos(self.duration_ns.load(Ordering::Relaxed)),
        }
    }
}

/// The latencies of a cohort's requests since its rule was loaded, as a histogram with the
/// bounds the `otel` instrument `chaos.cohort.duration` has: what the admin API's
/// Prometheus text exports as `chaos_cohort_duration_seconds`.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct DurationHistogram {
    /// The buckets' upper bounds, in seconds (a value equal to a bound is in its bucket).
    pub bounds: &'static [f64],
    /// Requests per bucket (not cumulative); one more than `bounds`, the last for `+Inf`.
    pub counts: Vec<u64>,
    /// Their latencies added up.
    pub sum: Duration,
}

struct Cohorts {
    experiment: CohortStats,
    control: CohortStats,
}

/// Why a guard stopped a rule (or the service guard stopped everything).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Breach {
    /// The condition that broke: `error_rate_above`, `p99_above`,
    /// `vs_control.error_rate_increase_above`, `vs_control.p99_ratio_above`, or
    /// `max_errors`.
    pub condition: String,
    /// What was observed, in the threshold's unit (`12.5%`, `2.4s`, `3.1x`).
    pub observed: String,
    /// The threshold it crossed.
    pub threshold: String,
    /// Requests judged (the experiment cohort's, or the organic traffic's).
    pub requests: u64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is above {} (over {} requests)",
            self.condition, self.observed, self.threshold, self.requests
        )
    }
}

/// Where a rule's ramp is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RampStatus {
    /// The step in force (0-based) and its rate.
    pub step: usize,
    /// The rate of that step.
    pub rate: Rate,
    /// How long the step has been in force.
    pub since: Dur,
    /// The soonest the next step can come (`None` on the last step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_in: Option<Dur>,
    /// Why the ramp is not moving on although its time came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
}

/// One cohort's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CohortFigures {
    /// Requests since the rule was loaded (exact).
    pub total_requests: u64,
    /// Their user-visible errors (exact).
    pub total_errors: u64,
    /// Requests in the window.
    pub requests: u64,
    /// Errors in the window.
    pub errors: u64,
    /// Errors over requests in the window.
    pub error_rate: f64,
    /// The median latency in the window (the upper bound of its bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<Dur>,
    /// The 99th percentile latency in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<Dur>,
    /// Every request's latency since the rule was loaded (not in the JSON: the admin
    /// API's Prometheus text exports it).
    #[serde(skip)]
    pub duration: DurationHistogram,
}

/// A rule's cohorts over its window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CohortsSnapshot {
    /// The window the figures cover: the guard's, else 60 s.
    pub window: Dur,
    /// Requests the rule injected into (would have, in shadow mode).
    pub experiment: CohortFigures,
    /// Requests it matched and left alone.
    pub control: CohortFigures,
}

impl CohortsSnapshot {
    /// No cohorts (a rule that never matched, over the default window).
    #[cfg(feature = "test-util")]
    pub(crate) fn empty() -> CohortsSnapshot {
        CohortsSnapshot {
            window: Dur(DEFAULT_SPAN),
            experiment: CohortFigures::default(),
            control: CohortFigures::default(),
        }
    }
}

/// The state of a guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuardState {
    /// No guard.
    None,
    /// Judged, and holding.
    Holding,
    /// Too few requests in the window to judge.
    TooFewRequests,
    /// Breached: the rule was aborted.
    Breached,
}

/// A ramp's settings and its progress.
struct Ramp {
    steps: Vec<Rate>,
    every: Duration,
    /// The step in force, when the guard gates the ramp.
    step: AtomicUsize,
    /// Since when (nanoseconds since the rule was loaded).
    step_since: AtomicU64,
    /// The experiment cohort's total when the step began.
    step_base: AtomicU64,
    /// 1: the step's time is up but it saw too few requests.
    held: AtomicU8,
}

/// A rule's cohorts and everything judged from them.
pub(crate) struct Watch {
    base: Instant,
    span: Duration,
    tick: Duration,
    guard: Option<Guard>,
    max_errors: Option<u64>,
    ramp: Option<Ramp>,
    cohorts: OnceLock<Box<Cohorts>>,
    /// When the guard is next judged (nanoseconds since `base`).
    next_judgement: AtomicU64,
    /// The error budget in one word, so a reservation and a settlement never see each
    /// other half done: experiment errors counted against `max_errors` (high half), and
    /// injections whose outcome is still to come, each holding a unit (low half).
    budget: AtomicU64,
}

/// The budget word's halves.
fn halves(word: u64) -> (u64, u64) {
    (word >> 32, word & u64::from(u32::MAX))
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("span", &self.span)
            .field("guard", &self.guard)
            .field("max_errors", &self.max_errors)
            .finish_non_exhaustive()
    }
}

/// A tick: a tenth of the window, at most a second.
fn tick_of(span: Duration) -> Duration {
    (span / 10).min(Duration::from_secs(1))
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

impl Watch {
    pub(crate) fn new(rule: &Rule, base: Instant) -> Watch {
        let span = rule.guard.as_ref().map_or(DEFAULT_SPAN, |g| g.window.0);
        Watch {
            base,
            span,
            tick: tick_of(span),
            guard: rule.guard.clone(),
            max_errors: rule.max_errors,
            ramp: rule.ramp.as_ref().map(|r| Ramp {
                steps: r.steps.clone(),
                every: r.every.0,
                step: AtomicUsize::new(0),
                step_since: AtomicU64::new(0),
                step_base: AtomicU64::new(0),
                held: AtomicU8::new(0),
            }),
            cohorts: OnceLock::new(),
            next_judgement: AtomicU64::new(0),
            budget: AtomicU64::new(0),
        }
    }

    fn cohorts(&self) -> &Cohorts {
        self.cohorts.get_or_init(|| {
            Box::new(Cohorts {
                experiment: CohortStats::new(self.base, self.span),
                control: CohortStats::new(self.base, self.span),
            })
        })
    }

    /// Whether the rule's cohorts are judged by anything, so outcomes must reach it.
    pub(crate) fn has_budget(&self) -> bool {
        self.max_errors.is_some()
    }

    /// Records one matched request's user-visible outcome.
    #[inline]
    pub(crate) fn record(&self, cohort: Cohort, now: Instant, latency: Duration, error: bool) {
        let c = self.cohorts();
        let stats = match cohort {
            Cohort::Experiment => &c.experiment,
            Cohort::Control => &c.control,
        };
        stats.duration[seconds_bucket(latency)].fetch_add(1, Ordering::Relaxed);
        stats.duration_ns.fetch_add(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if error {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats.window.record(now, latency, error);
    }

    // ---- the error budget

    /// Whether the error budget (if any) is spent: the rule is retired.
    pub(crate) fn budget_spent(&self) -> bool {
        self.max_errors
            .is_some_and(|max| halves(self.budget.load(Ordering::Acquire)).0 >= max)
    }

    /// Takes one unit of the budget for an injection whose outcome is to come; `false`
    /// when what is spent and in flight already fills it. Without a budget, always `true`.
    pub(crate) fn reserve(&self) -> bool {
        let Some(max) = self.max_errors else {
            return true;
        };
        self.budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (spent, in_flight) = halves(w);
                (spent + in_flight < max).then_some(w + 1)
            })
            .is_ok()
    }

    /// Gives back a unit taken by [`reserve`](Self::reserve); an `error` spends it.
    /// `true` when that spent the last of the budget.
    pub(crate) fn settle(&self, error: bool) -> bool {
        let Some(max) = self.max_errors else {
            return false;
        };
        let spend = if error { 1 << 32 } else { 0 };
        let before = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (_, in_flight) = halves(w);
                (in_flight > 0).then(|| w - 1 + spend)
            })
            .unwrap_or_else(|w| w);
        error && halves(before).0 + 1 == max
    }

    /// The budget and what is spent of it.
    pub(crate) fn budget(&self) -> Option<(u64, u64)> {
        self.max_errors
            .map(|max| (max, halves(self.budget.load(Ordering::Acquire)).0))
    }

    // ---- the ramp

    /// The rate in force now, or `None` without a ramp.
    #[inline]
    pub(crate) fn ramp_rate(&self, now: Instant) -> Option<Rate> {
        let r = self.ramp.as_ref()?;
        let i = if self.guard.is_some() {
            r.step.load(Ordering::Acquire)
        } else {
            let elapsed = now.saturating_duration_since(self.base);
            (elapsed.as_nanos() / r.every.as_nanos().max(1)) as usize
        };
        Some(r.steps[i.min(r.steps.len() - 1)])
    }

    /// The ramp's progress.
    pub(crate) fn ramp_status(&self, now: Instant) -> Option<RampStatus> {
        let r = self.ramp.as_ref()?;
        let elapsed = now.saturating_duration_since(self.base);
        let last = r.steps.len() - 1;
        let (step, since) = if self.guard.is_some() {
            let since = Duration::from_nanos(r.step_since.load(Ordering::Acquire));
            (r.step.load(Ordering::Acquire), since)
        } else {
            let i = (elapsed.as_nanos() / r.every.as_nanos().max(1)) as usize;
            (i.min(last), r.every * i.min(last) as u32)
        };
        let in_step = elapsed.saturating_sub(since);
        let held_back = (r.held.load(Ordering::Acquire) == 1 && step < last).then(|| {
            let seen = self.totals(Cohort::Experiment).0 - r.step_base.load(Ordering::Acquire);
            let min = self.guard.as_ref().map_or(0, |g| g.min_requests);
            format!("this step saw {seen} of the {min} requests it needs to move on")
        });
        Some(RampStatus {
            step,
            rate: r.steps[step.min(last)],
            since: Dur(in_step),
            next_in: (step < last).then(|| Dur(r.every.saturating_sub(in_step))),
            held_back,
        })
    }

    /// Moves the ramp on when its step's time is up and the step saw enough requests.
    /// Called only after the guard held.
    fn advance_ramp(&self, elapsed: Duration, min_requests: u64) {
        let Some(r) = &self.ramp else { return };
        let step = r.step.load(Ordering::Acquire);
        if step + 1 >= r.steps.len() {
            return;
        }
        let since = Duration::from_nanos(r.step_since.load(Ordering::Acquire));
        if elapsed < since + r.every {
            return;
        }
        let total = self.totals(Cohort::Experiment).0;
        if total - r.step_base.load(Ordering::Acquire) < min_requests {
            r.held.store(1, Ordering::Release);
            return;
        }
        if r.step
            .compare_exchange(step, step + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            r.step_since.store(ns(elapsed), Ordering::Release);
            r.step_base.store(total, Ordering::Release);
            r.held.store(0, Ordering::Release);
        }
    }

    // ---- judging

    fn totals(&self, cohort: Cohort) -> (u64, u64) {
        let Some(c) = self.cohorts.get() else {
            return (0, 0);
        };
        let s = match cohort {
            Cohort::Experiment => &c.experiment,
            Cohort::Control => &c.control,
        };
        (s.requests(), s.errors.load(Ordering::Relaxed))
    }

    fn histogram(&self, cohort: Cohort) -> DurationHistogram {
        match self.cohorts.get() {
            None => DurationHistogram {
                bounds: &SECONDS,
                counts: vec![0; SECONDS.len() + 1],
                sum: Duration::ZERO,
            },
            Some(c) => match cohort {
                Cohort::Experiment => c.experiment.histogram(),
                Cohort::Control => c.control.histogram(),
            },
        }
    }

    fn sums(&self, now: Instant) -> (Sum, Sum) {
        match self.cohorts.get() {
            None => (Sum::default(), Sum::default()),
            Some(c) => (c.experiment.window.sum(now), c.control.window.sum(now)),
        }
    }

    /// Whether a judgement is due at `now`; the caller that gets `true` judges.
    #[inline]
    pub(crate) fn judgement_due(&self, now: Instant) -> bool {
        if self.guard.is_none() {
            return false;
        }
        let at = ns(now.saturating_duration_since(self.base));
        let next = self.next_judgement.load(Ordering::Acquire);
        at >= next
            && self
                .next_judgement
                .compare_exchange(
                    next,
                    at + ns(self.tick),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Judges the cohorts of the window ending at `now`: a breach, if any. When the guard
    /// holds, the ramp may move on.
    pub(crate) fn judge(&self, now: Instant) -> Option<Breach> {
        let g = self.guard.as_ref()?;
        let (exp, ctl) = self.sums(now);
        let min = g.min_requests;
        if exp.requests >= min {
            if let Some(b) = absolute_breach(g, &exp) {
                return Some(b);
            }
            let rate = exp.error_rate();
            let p99 = quantile(&exp.hist, 0.99);
            if let Some(vs) = &g.vs_control
                && ctl.requests >= min
            {
                let increase = rate - ctl.error_rate();
                if let Some(limit) = vs.error_rate_increase_above
                    && increase > limit.fraction()
                    && beyond_chance(&exp, &ctl)
                {
                    return Some(Breach {
                        condition: "vs_control.error_rate_increase_above".into(),
                        observed: format!(
                            "{} (experiment {} vs control {})",
                            percent(increase),
                            percent(rate),
                            percent(ctl.error_rate())
                        ),
                        threshold: limit.to_string(),
                        requests: exp.requests,
                    });
                }
                let ctl_p99 = quantile(&ctl.hist, 0.99);
                if let (Some(limit), Some(e), Some(c)) = (vs.p99_ratio_above, p99, ctl_p99) {
                    let ratio = e.as_secs_f64() / c.as_secs_f64().max(1e-9);
                    if ratio > limit {
                        return Some(Breach {
                            condition: "vs_control.p99_ratio_above".into(),
                            observed: format!(
                                "{ratio:.2}x (experiment {} vs control {})",
                                Dur(e),
                                Dur(c)
                            ),
                            threshold: format!("{limit}x"),
                            requests: exp.requests,
                        });
                    }
                }
            }
        }
        self.advance_ramp(now.saturating_duration_since(self.base), min);
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
        if self.sums(now).0.requests < g.min_requests {
            GuardState::TooFewRequests
        } else {
            GuardState::Holding
        }
    }

    /// The cohorts' figures over the window ending at `now`.
    pub(crate) fn snapshot(&self, now: Instant) -> CohortsSnapshot {
        let (exp, ctl) = self.sums(now);
        let figures = |sum: &Sum, cohort| {
            let (total_requests, total_errors) = self.totals(cohort);
            CohortFigures {
                total_requests,
                total_errors,
                requests: sum.requests,
                errors: sum.errors,
                error_rate: sum.error_rate(),
                p50: quantile(&sum.hist, 0.5).map(Dur),
                p99: quantile(&sum.hist, 0.99).map(Dur),
                duration: self.histogram(cohort),
            }
        };
        CohortsSnapshot {
            window: Dur(self.span),
            experiment: figures(&exp, Cohort::Experiment),
            control: figures(&ctl, Cohort::Control),
        }
    }
}

/// The breach of a guard's own thresholds (`error_rate_above`, `p99_above`) by `sum`, if
/// any: what a rule's guard asks of its experiment cohort, and the service guard of the
/// organic traffic.
pub(crate) fn absolute_breach(g: &Guard, sum: &Sum) -> Option<Breach> {
    let rate = sum.error_rate();
    if let Some(limit) = g.error_rate_above
        && rate > limit.fraction()
    {
        return Some(Breach {
            condition: "error_rate_above".into(),
            observed: percent(rate),
            threshold: limit.to_string(),
            requests: sum.requests,
        });
    }
    if let (Some(limit), Some(p99)) = (g.p99_above, quantile(&sum.hist, 0.99))
        && p99 > limit.0
    {
        return Some(Breach {
            condition: "p99_above".into(),
            observed: Dur(p99).to_string(),
            threshold: limit.to_string(),
            requests: sum.requests,
        });
    }
    None
}

/// Whether the experiment's error rate is above control's by more than chance explains:
/// a one-sided two-proportion z-test at 97.5% (z above 1.96), so two cohorts that only
/// differ by the luck of a small window do not abort the rule.
fn beyond_chance(exp: &Sum, ctl: &Sum) -> bool {
    let (n1, n2) = (exp.requests as f64, ctl.requests as f64);
    let pooled = (exp.errors + ctl.errors) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return exp.error_rate() > ctl.error_rate();
    }
    (exp.error_rate() - ctl.error_rate()) / se > 1.96
}

/// A rule's abort: why, and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AbortInfo {
    /// Why, in a sentence.
    pub reason: String,
    /// The breach that caused it, when a guard did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach: Option<Breach>,
    /// When.
    pub at: Timestamp,
}

impl AbortInfo {
    pub(crate) fn new(reason: String, breach: Option<Breach>) -> AbortInfo {
        AbortInfo {
            reason,
            breach,
            at: Timestamp(SystemTime::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Fault, Rule};

    #[test]
    fn the_budget_is_never_overspent_by_racing_threads() {
        for _ in 0..50 {
            let rule = Rule::new("b", "server", Fault::Drop(crate::rules::DropKind::Reset))
                .with_max_errors(5);
            let w = std::sync::Arc::new(Watch::new(&rule, Instant::now()));
            let granted = std::sync::Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (w, granted) = (w.clone(), granted.clone());
                    std::thread::spawn(move || {
                        for _ in 0..200 {
                            if w.reserve() {
                                granted.fetch_add(1, Ordering::Relaxed);
                                // Every injection fails the user.
                                w.settle(true);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(granted.load(Ordering::Relaxed), 5);
            assert_eq!(w.budget(), Some((5, 5)));
            assert!(w.budget_spent());
            assert!(!w.reserve());
        }
    }
}
