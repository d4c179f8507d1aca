//! Guards: judging a rule's cohorts (`guard:` on a rule) and the organic traffic (`guard:`
//! on the rules document, the service guard), and what a breach says.

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::figures::Tally;
use crate::rules::{Dur, Guard, Timestamp};

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

/// A tick: how often a guard over `window` is judged (a tenth of it, at most a second).
pub(crate) fn tick_of(window: Duration) -> Duration {
    (window / 10).min(Duration::from_secs(1))
}

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The breach of a guard's own thresholds (`error_rate_above`, `p99_above`) by `seen`, if
/// any: what a rule's guard asks of its experiment cohort, and the service guard of the
/// organic traffic.
pub(crate) fn absolute_breach(g: &Guard, seen: &Tally) -> Option<Breach> {
    let rate = seen.error_rate();
    if let Some(limit) = g.error_rate_above
        && rate > limit.fraction()
    {
        return Some(Breach {
            condition: "error_rate_above".into(),
            observed: percent(rate),
            threshold: limit.to_string(),
            requests: seen.requests,
        });
    }
    if let (Some(limit), Some(p99)) = (g.p99_above, seen.p99())
        && p99 > limit.0
    {
        return Some(Breach {
            condition: "p99_above".into(),
            observed: Dur(p99).to_string(),
            threshold: limit.to_string(),
            requests: seen.requests,
        });
    }
    None
}

/// The breach of a rule's guard by its cohorts' windows, if any: its own thresholds on the
/// experiment, then `vs_control`. Each side needs `min_requests` to be judged.
pub(crate) fn cohorts_breach(g: &Guard, exp: &Tally, ctl: &Tally) -> Option<Breach> {
    let min = g.min_requests;
    if exp.requests < min {
        return None;
    }
    if let Some(b) = absolute_breach(g, exp) {
        return Some(b);
    }
    let vs = g.vs_control.as_ref()?;
    if ctl.requests < min {
        return None;
    }
    let (rate, ctl_rate) = (exp.error_rate(), ctl.error_rate());
    let increase = rate - ctl_rate;
    if let Some(limit) = vs.error_rate_increase_above
        && increase > limit.fraction()
        && beyond_chance(exp, ctl)
    {
        return Some(Breach {
            condition: "vs_control.error_rate_increase_above".into(),
            observed: format!(
                "{} (experiment {} vs control {})",
                percent(increase),
                percent(rate),
                percent(ctl_rate)
            ),
            threshold: limit.to_string(),
            requests: exp.requests,
        });
    }
    if let (Some(limit), Some(e), Some(c)) = (vs.p99_ratio_above, exp.p99(), ctl.p99()) {
        let ratio = e.as_secs_f64() / c.as_secs_f64().max(1e-9);
        if ratio > limit {
            return Some(Breach {
                condition: "vs_control.p99_ratio_above".into(),
                observed: format!("{ratio:.2}x (experiment {} vs control {})", Dur(e), Dur(c)),
                threshold: format!("{limit}x"),
                requests: exp.requests,
            });
        }
    }
    None
}

/// Whether the experiment's error rate is above control's by more than chance explains:
/// a one-sided two-proportion z-test at 97.5% (z above 1.96), so two cohorts that only
/// differ by the luck of a small window do not abort the rule.
fn beyond_chance(exp: &Tally, ctl: &Tally) -> bool {
    let (n1, n2) = (exp.requests as f64, ctl.requests as f64);
    let pooled = (exp.errors + ctl.errors) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return exp.error_rate() > ctl.error_rate();
    }
    (exp.error_rate() - ctl.error_rate()) / se > 1.96
}

/// The service guard: when it is next judged, and the breach that stopped everything.
pub(crate) struct ServiceGuard {
    base: Instant,
    /// When it is next judged (nanoseconds since `base`); `u64::MAX`: no guard.
    next: AtomicU64,
    breach: Mutex<Option<AbortInfo>>,
}

impl ServiceGuard {
    pub(crate) fn new() -> ServiceGuard {
        ServiceGuard {
            base: Instant::now(),
            next: AtomicU64::new(u64::MAX),
            breach: Mutex::new(None),
        }
    }

    /// Arms (or disarms) the judgements for a new rules document.
    pub(crate) fn reset(&self, guard: Option<&Guard>) {
        self.next.store(
            if guard.is_some() { 0 } else { u64::MAX },
            Ordering::Release,
        );
    }

    /// Whether a guard is set: one relaxed load, for every finished observation.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.next.load(Ordering::Relaxed) != u64::MAX
    }

    /// Forgets a breach (the kill switch was turned off by hand).
    pub(crate) fn clear(&self) {
        *self.breach.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether a judgement is due; the caller that gets `true` judges.
    fn due(&self, tick: Duration) -> bool {
        let next = self.next.load(Ordering::Acquire);
        if next == u64::MAX {
            return false;
        }
        let at = super::ns(self.base.elapsed());
        at >= next
            && self
                .next
                .compare_exchange(
                    next,
                    at + super::ns(tick),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Judges `g` on the organic traffic (`organic` sums a window of it) when a judgement
    /// is due, or reads it anyway when `always`: what was seen, and a breach to act on
    /// (never while `killed`). `None` when not due and not `always`.
    pub(crate) fn judge(
        &self,
        g: &Guard,
        always: bool,
        killed: bool,
        organic: impl FnOnce(Duration) -> Tally,
    ) -> Option<(Tally, Option<Breach>)> {
        let judging = self.due(tick_of(g.window.0));
        if !judging && !always {
            return None;
        }
        let seen = organic(g.window.0);
        let breach = (judging && seen.requests >= g.min_requests && !killed)
            .then(|| absolute_breach(g, &seen))
            .flatten();
        Some((seen, breach))
    }

    /// Remembers the breach that stopped everything, under `reason`.
    pub(crate) fn trip(&self, reason: String, breach: Breach) {
        *self.breach.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(AbortInfo::new(reason, Some(breach)));
    }

    /// The guard as `seen` shows it.
    pub(crate) fn snapshot(&self, g: &Guard, seen: &Tally) -> ServiceGuardSnapshot {
        let breach = self
            .breach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = if breach.is_some() {
            GuardState::Breached
        } else if seen.requests < g.min_requests {
            GuardState::TooFewRequests
        } else {
            GuardState::Holding
        };
        ServiceGuardSnapshot {
            guard: g.clone(),
            state,
            requests: seen.requests,
            errors: seen.errors,
            error_rate: seen.error_rate(),
            timed: seen.timed(),
            p99: seen.p99().map(Dur),
            breach,
        }
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
    /// Organic responses in the window that were timed: what `p99` rests on (a sample of
    /// at least twice `min_requests` over the window, see
    /// [`ORGANIC_TIMINGS_PER_SECOND`](crate::outcome::ORGANIC_TIMINGS_PER_SECOND)).
    pub timed: u64,
    /// The organic p99 in the window, of the timed responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<Dur>,
    /// The breach that stopped everything, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach: Option<AbortInfo>,
}
