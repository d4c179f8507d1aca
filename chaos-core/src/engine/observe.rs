//! Observing work for the engine: an [`Observation`] started while armed, and finished
//! into the steady state, the cohorts of the rules it matched, and what follows from them
//! (a retired budget, a breached guard, the service guard's judgement).

use tokio::time::Instant;

use super::Chaos;
use crate::outcome::{Observation, Settled, SteadyState};

impl Chaos {
    /// Starts observing a piece of work: `None` while the engine is not armed (nothing is
    /// recorded then).
    #[inline]
    pub fn observe(&self) -> Option<Observation> {
        self.is_armed().then(Observation::start_now)
    }

    /// Records the outcome of the rules `obs` noted (in their cohorts), acts on what
    /// follows, and judges the service guard when due.
    #[inline]
    fn settle(&self, obs: Observation, now: Instant, error: bool) {
        let Observation {
            start, mut touches, ..
        } = obs;
        if !touches.is_empty() {
            touches.finish(
                start,
                now,
                error,
                #[cfg(feature = "otel")]
                self.metrics(),
                |rule, settled| match settled {
                    Settled::BudgetSpent => self.budget_spent(rule),
                    Settled::Breach(b) => self.abort_breach(rule, b),
                },
            );
        }
        self.service_guard_tick();
    }
}

impl Observation {
    /// Records the outcome: in `steady` (`error`; `injected`, or a fault injected anywhere
    /// in the work, keeps it out of the organic figures), and in the cohorts of the rules
    /// the work matched. Due guards are judged, and the service guard.
    #[inline]
    pub fn finish(self, chaos: &Chaos, steady: &SteadyState, error: bool, injected: bool) {
        let injected = injected || self.injected();
        let now = Instant::now();
        steady.record_at(self.start.into_std(), now.into_std(), error, injected);
        chaos.settle(self, now, error);
    }

    /// [`finish`](Self::finish) at a point named with each call (the generic injection
    /// point).
    pub(crate) fn finish_named(
        self,
        chaos: &Chaos,
        point: &str,
        target: &str,
        error: bool,
        injected: bool,
    ) {
        let injected = injected || self.injected();
        chaos.record_outcome(point, target, self.start.into_std(), error, injected);
        chaos.settle(self, Instant::now(), error);
    }
}
