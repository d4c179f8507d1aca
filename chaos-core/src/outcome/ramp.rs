//! A rule's ramp: its rate in steps over time, and, under a guard, a step that moves on
//! only after a whole step that held and saw enough requests.

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::rules::{Dur, Rate};

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

/// A ramp's settings and its progress. Times are since the rule was loaded.
pub(crate) struct Ramp {
    steps: Vec<Rate>,
    every: Duration,
    /// Whether a guard gates it (else it moves on with the clock alone).
    gated: bool,
    /// The step in force, when gated.
    step: AtomicUsize,
    /// Since when (nanoseconds).
    step_since: AtomicU64,
    /// The experiment cohort's total when the step began.
    step_base: AtomicU64,
    /// 1: the step's time is up but it saw too few requests.
    held: AtomicU8,
    /// Held while a judge moves the ramp on: the step, its start and its base change
    /// together, so an overlapping judge never reads the new step with the old step's
    /// start (and moves on twice in one step's time).
    advancing: Mutex<()>,
}

impl Ramp {
    pub(crate) fn new(steps: Vec<Rate>, every: Duration, gated: bool) -> Ramp {
        Ramp {
            steps,
            every,
            gated,
            step: AtomicUsize::new(0),
            step_since: AtomicU64::new(0),
            step_base: AtomicU64::new(0),
            held: AtomicU8::new(0),
            advancing: Mutex::new(()),
        }
    }

    fn last(&self) -> usize {
        self.steps.len() - 1
    }

    /// The step the clock alone gives at `elapsed`.
    fn step_by_clock(&self, elapsed: Duration) -> usize {
        ((elapsed.as_nanos() / self.every.as_nanos().max(1)) as usize).min(self.last())
    }

    /// The rate in force `elapsed` after the rule was loaded.
    #[inline]
    pub(crate) fn rate(&self, elapsed: Duration) -> Rate {
        let i = if self.gated {
            self.step.load(Ordering::Acquire).min(self.last())
        } else {
            self.step_by_clock(elapsed)
        };
        self.steps[i]
    }

    /// The ramp's progress; `experiment` is the experiment cohort's total so far, and
    /// `min_requests` what a step needs to move on.
    pub(crate) fn status(
        &self,
        elapsed: Duration,
        experiment: u64,
        min_requests: u64,
    ) -> RampStatus {
        let last = self.last();
        let (step, since) = if self.gated {
            // The step first: a new step is read with its own start (stored before it).
            let step = self.step.load(Ordering::Acquire);
            (
                step,
                Duration::from_nanos(self.step_since.load(Ordering::Acquire)),
            )
        } else {
            let i = self.step_by_clock(elapsed);
            (i, self.every * i as u32)
        };
        let in_step = elapsed.saturating_sub(since);
        let held_back = (self.held.load(Ordering::Acquire) == 1 && step < last).then(|| {
            let seen = experiment.saturating_sub(self.step_base.load(Ordering::Acquire));
            format!("this step saw {seen} of the {min_requests} requests it needs to move on")
        });
        RampStatus {
            step,
            rate: self.steps[step.min(last)],
            since: Dur(in_step),
            next_in: (step < last).then(|| Dur(self.every.saturating_sub(in_step))),
            held_back,
        }
    }

    /// Moves on when the step's time is up and it saw `min_requests` (the experiment
    /// cohort's total is `experiment`). Called only after the guard held.
    /// Judges overlap only when one is still at work as the next tick's begins, so the
    /// lock is all but never contended (a judgement is once a tick, off the no-match path).
    pub(crate) fn advance(&self, elapsed: Duration, experiment: u64, min_requests: u64) {
        let _advancing = self.advancing.lock().unwrap_or_else(|p| p.into_inner());
        let step = self.step.load(Ordering::Acquire);
        if step >= self.last() {
            return;
        }
        let since = Duration::from_nanos(self.step_since.load(Ordering::Acquire));
        if elapsed < since + self.every {
            return;
        }
        if experiment.saturating_sub(self.step_base.load(Ordering::Acquire)) < min_requests {
            self.held.store(1, Ordering::Release);
            return;
        }
        // The start and base before the step, so whoever reads the new step reads its
        // start with it (`status` may pair the old step with the new start for a moment).
        self.step_since.store(super::ns(elapsed), Ordering::Release);
        self.step_base.store(experiment, Ordering::Release);
        self.held.store(0, Ordering::Release);
        self.step.store(step + 1, Ordering::Release);
    }
}

#[cfg(all(test, not(chaos_loom)))]
mod tests {
    use super::*;

    fn rates(r: &[f64]) -> Vec<Rate> {
        r.iter().map(|&r| Rate::new(r).unwrap()).collect()
    }

    /// A total read before a judge moved the step's base on (a snapshot racing a judge)
    /// is below that base: the step has seen none of its requests yet, not a wrapped-round
    /// count, and the ramp neither panics nor moves on.
    #[test]
    fn a_total_older_than_the_steps_base_counts_as_none_seen() {
        let r = Ramp::new(rates(&[0.1, 0.5, 1.0]), Duration::from_secs(1), true);
        let s = Duration::from_millis;
        r.advance(s(1500), 10, 0);
        assert_eq!(r.status(s(1500), 10, 0).step, 1);
        // Step 1's time is up, with too few requests: held back.
        r.advance(s(2600), 12, 5);
        let older = 7;
        let status = r.status(s(2600), older, 5);
        assert_eq!(status.step, 1);
        assert_eq!(
            status.held_back.as_deref(),
            Some("this step saw 0 of the 5 requests it needs to move on")
        );
        r.advance(s(2700), older, 5);
        assert_eq!(r.status(s(2700), 12, 5).step, 1, "held, not moved on");
    }
}
