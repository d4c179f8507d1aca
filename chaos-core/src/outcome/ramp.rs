//! A rule's ramp: its rate in steps over time, and, under a guard, a step that moves on
//! only after a whole step that held and saw enough requests.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Mutex, MutexGuard};
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
    /// The step in force, when gated: read without the lock by every decision, written
    /// only under it.
    step: AtomicUsize,
    /// The rest of a gated ramp's progress, changed with the step under one lock, so a
    /// judge whose work overlaps another's never reads the new step with the old step's
    /// start (and moves on twice in one step's time). The lock is taken by the judge of a
    /// tick and by a snapshot, never by a decision.
    progress: Mutex<Progress>,
}

/// Where the step in force began.
#[derive(Default)]
struct Progress {
    /// When it began.
    since: Duration,
    /// The experiment cohort's total then.
    base: u64,
    /// Its time is up but it saw too few requests.
    held: bool,
}

impl Progress {
    /// The requests the step has seen, of the experiment cohort's `total` (none when the
    /// total was read before the step began).
    fn seen(&self, total: u64) -> u64 {
        total.saturating_sub(self.base)
    }
}

impl Ramp {
    pub(crate) fn new(steps: Vec<Rate>, every: Duration, gated: bool) -> Ramp {
        Ramp {
            steps,
            every,
            gated,
            step: AtomicUsize::new(0),
            progress: Mutex::new(Progress::default()),
        }
    }

    fn last(&self) -> usize {
        self.steps.len() - 1
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
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
        let (step, since, held_back) = if self.gated {
            let p = self.progress();
            let step = self.step.load(Ordering::Acquire);
            let held_back = (p.held && step < last).then(|| {
                let seen = p.seen(experiment);
                format!("this step saw {seen} of the {min_requests} requests it needs to move on")
            });
            (step, p.since, held_back)
        } else {
            let i = self.step_by_clock(elapsed);
            (i, self.every * i as u32, None)
        };
        let in_step = elapsed.saturating_sub(since);
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
    pub(crate) fn advance(&self, elapsed: Duration, experiment: u64, min_requests: u64) {
        let mut p = self.progress();
        let step = self.step.load(Ordering::Acquire);
        if step >= self.last() || elapsed < p.since + self.every {
            return;
        }
        if p.seen(experiment) < min_requests {
            p.held = true;
            return;
        }
        *p = Progress {
            since: elapsed,
            base: experiment,
            held: false,
        };
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
