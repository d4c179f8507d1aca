//! Observing work for the engine: an [`Observation`] started while armed, and finished
//! into the steady state, the cohorts of the rules it matched, and what follows from them
//! (a retired budget, a breached guard, the service guard's judgement).

use tokio::time::Instant;

use super::Chaos;
use crate::decision::{Observation, Settled, Touches};
use crate::outcome::SteadyState;

impl Chaos {
    /// Starts observing a piece of work: `None` while the engine is not armed (nothing is
    /// recorded then).
    #[inline]
    pub fn observe(&self) -> Option<Observation> {
        self.is_armed().then(Observation::start_now)
    }

    /// Records the outcome of the rules `touches` noted (in their cohorts) and acts on
    /// what follows.
    #[cold]
    fn settle(&self, touches: &mut Touches, start: Instant, now: Instant, error: bool) {
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
}

impl Observation {
    /// Records the outcome: in `steady` (`error`; `injected`, or a fault injected anywhere
    /// in the work, keeps it out of the organic figures), and in the cohorts of the rules
    /// the work matched. Due guards are judged, and the service guard.
    #[inline]
    pub fn finish(mut self, chaos: &Chaos, steady: &SteadyState, error: bool, injected: bool) {
        let injected = injected || self.injected();
        let now = Instant::now();
        steady.record_at(self.start.into_std(), now.into_std(), error, injected);
        if !self.touches.is_empty() {
            chaos.settle(&mut self.touches, self.start, now, error);
        }
        chaos.service_guard_tick();
    }

    /// [`finish`](Self::finish) at a point named with each call (the generic injection
    /// point).
    pub(crate) fn finish_named(
        mut self,
        chaos: &Chaos,
        point: &str,
        target: &str,
        error: bool,
        injected: bool,
    ) {
        let injected = injected || self.injected();
        chaos.record_outcome(point, target, self.start.into_std(), error, injected);
        if !self.touches.is_empty() {
            chaos.settle(&mut self.touches, self.start, Instant::now(), error);
        }
        chaos.service_guard_tick();
    }
}
