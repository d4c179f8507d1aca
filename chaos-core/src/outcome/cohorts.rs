//! A rule's two cohorts: the requests it injected into (the experiment) and those it
//! matched and left alone (control), each with exact totals since the rule was loaded and
//! a window for its guard.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::figures::{SECONDS, Tally, seconds_bucket};
use super::ring::{Outcomes, Ring};
use crate::rules::Dur;

/// The window of a rule without a guard, for the snapshot's figures.
pub(crate) const DEFAULT_SPAN: Duration = Duration::from_secs(60);
/// Slots per window.
const PARTS: u64 = 20;
/// Slots kept: a window's worth and the one being filled, with one to spare.
const RING: usize = PARTS as usize + 2;

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
    window: Ring<Outcomes, RING>,
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
            window: Ring::new(base, span / PARTS as u32, 1),
            duration: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_ns: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    #[inline]
    fn record(&self, now: Instant, latency: Duration, error: bool) {
        self.duration[seconds_bucket(latency)].fetch_add(1, Ordering::Relaxed);
        self.duration_ns.fetch_add(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.window.record(now, latency, error);
    }

    fn totals(&self) -> (u64, u64) {
        let requests = self
            .duration
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum();
        (requests, self.errors.load(Ordering::Relaxed))
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

/// A rule's cohorts, made when it first matches a request.
pub(crate) struct Cohorts {
    experiment: CohortStats,
    control: CohortStats,
}

impl Cohorts {
    /// Cohorts whose windows are `span` long, counted from `base`.
    pub(crate) fn new(base: Instant, span: Duration) -> Cohorts {
        Cohorts {
            experiment: CohortStats::new(base, span),
            control: CohortStats::new(base, span),
        }
    }

    fn of(&self, cohort: Cohort) -> &CohortStats {
        match cohort {
            Cohort::Experiment => &self.experiment,
            Cohort::Control => &self.control,
        }
    }

    /// Records one matched request's user-visible outcome.
    #[inline]
    pub(crate) fn record(&self, cohort: Cohort, now: Instant, latency: Duration, error: bool) {
        self.of(cohort).record(now, latency, error);
    }

    /// Requests and errors since the rule was loaded.
    pub(crate) fn totals(&self, cohort: Cohort) -> (u64, u64) {
        self.of(cohort).totals()
    }

    /// The windows ending at `now`: experiment, control.
    pub(crate) fn windows(&self, now: Instant) -> (Tally, Tally) {
        (
            self.experiment.window.tally(now, PARTS),
            self.control.window.tally(now, PARTS),
        )
    }

    /// The figures over the window (`span` long) ending at `now`.
    pub(crate) fn snapshot(&self, now: Instant, span: Duration) -> CohortsSnapshot {
        let (exp, ctl) = self.windows(now);
        let figures = |window: &Tally, stats: &CohortStats| {
            let (total_requests, total_errors) = stats.totals();
            CohortFigures {
                total_requests,
                total_errors,
                requests: window.requests,
                errors: window.errors,
                error_rate: window.error_rate(),
                p50: window.quantile(0.5).map(Dur),
                p99: window.p99().map(Dur),
                duration: stats.histogram(),
            }
        };
        CohortsSnapshot {
            window: Dur(span),
            experiment: figures(&exp, &self.experiment),
            control: figures(&ctl, &self.control),
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

impl DurationHistogram {
    /// No requests.
    fn empty() -> DurationHistogram {
        DurationHistogram {
            bounds: &SECONDS,
            counts: vec![0; SECONDS.len() + 1],
            sum: Duration::ZERO,
        }
    }
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
    /// No cohorts: a rule that never matched, over `span`.
    pub(crate) fn empty(span: Duration) -> CohortsSnapshot {
        let none = || CohortFigures {
            duration: DurationHistogram::empty(),
            ..CohortFigures::default()
        };
        CohortsSnapshot {
            window: Dur(span),
            experiment: none(),
            control: none(),
        }
    }
}
