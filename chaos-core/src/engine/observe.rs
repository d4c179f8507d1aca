//! Observing work for the engine: an [`Observation`] started while armed, and finished
//! into the steady state, the cohorts of the rules it matched, and what follows from them
//! (a retired budget, a breached guard, the service guard's judgement).

use tokio::time::Instant;

use super::Chaos;
use crate::decision::{Observation, Settled, Touches};
use crate::outcome::SteadyState;

impl Chaos {
    /// Starts observing a piece of work, timed from now: `None` while the engine is not
    /// armed (nothing is recorded then).
    #[inline]
    pub fn observe(&self) -> Option<Observation> {
        self.is_armed().then(|| Observation::start_now(true))
    }

    /// Starts observing a piece of work whose outcome goes to `steady`, timed only if a
    /// rule matches it (timed from its decision) or it is in `steady`'s sample of
    /// organic work: about
    /// [`ORGANIC_TIMINGS_PER_SECOND`](crate::outcome::ORGANIC_TIMINGS_PER_SECOND) a second,
    /// more if the service guard needs them to judge, every one while there are fewer.
    /// Every outcome is counted. What the adapters use: an organic request outside the
    /// sample does not read the clock (see
    /// [`SteadyState`](crate::outcome::SteadyState) for the second it is counted in).
    #[inline]
    pub fn observe_sampled(&self, steady: &SteadyState) -> Option<Observation> {
        self.is_armed()
            .then(|| Observation::start_now(steady.sample()))
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
        if self.start.is_none() && !injected && self.touches.is_empty() {
            // Organic and outside the sample: counted without reading the clock.
            steady.count_untimed(error);
        } else {
            let now = Instant::now();
            steady.record_at(
                self.start.map(Instant::into_std),
                now.into_std(),
                error,
                injected,
            );
            if !self.touches.is_empty() {
                chaos.settle(&mut self.touches, self.start.unwrap_or(now), now, error);
            }
        }
        chaos.service_guard_tick();
        if self.touches.is_empty() {
            // Nothing noted, so nothing held: skip the drop glue of its empty slots.
            std::mem::forget(self);
        }
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
        let start = self.start.map(Instant::into_std);
        chaos.record_outcome(point, target, start, error, injected);
        if !self.touches.is_empty() {
            let now = Instant::now();
            chaos.settle(&mut self.touches, self.start.unwrap_or(now), now, error);
        }
        chaos.service_guard_tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{DropKind, Fault, Rate, Rule};
    use crate::{Point, RequestView};

    /// An organic request outside the sample is counted without a timing; a request a
    /// rule matched is timed whatever the sample says (here a control-cohort request,
    /// which nothing is injected into).
    #[test]
    fn every_matched_request_is_timed_and_organic_ones_by_sample() {
        let chaos = Chaos::new();
        let mut rule = Rule::new("r", "server", Fault::Drop(DropKind::Reset));
        rule.rate = Rate::new(0.0).unwrap();
        rule.target = Some("matched".into());
        chaos.add_rule(rule).unwrap();
        let steady = chaos.steady_state("server", "");
        steady.never_sample();
        // Observed and decided, nothing injected.
        let observed = |target| {
            let mut obs = chaos.observe_sampled(&steady).unwrap();
            let view = RequestView::new(Point::Server, target);
            assert!(!chaos.decide_observed(&view, Some(&mut obs)).is_inject());
            obs
        };

        // Both observed before either is recorded: the first record sets the sample anew.
        let organic = observed("other");
        assert!(organic.start().is_none(), "outside the sample: not timed");
        let matched = observed("matched");
        assert!(matched.start().is_some(), "matched: timed");
        organic.finish(&chaos, &steady, false, false);
        matched.finish(&chaos, &steady, false, false);

        let seen = steady.snapshot(std::time::Duration::from_secs(10));
        // Nothing was injected into either (the control cohort is organic traffic): both
        // counted, only the matched one timed.
        assert_eq!((seen.requests, seen.timed), (2, 1));
        let cohorts = &chaos.snapshot().rules[0].cohorts;
        assert_eq!(cohorts.control.requests, 1);
    }

    /// A hop a rule matched inside a request a server layer serves notes its touch in
    /// the request's scope, not in its own observation: it is timed all the same.
    #[tokio::test]
    async fn a_matched_hop_inside_a_served_request_is_timed() {
        let chaos = Chaos::new();
        let mut rule = Rule::new("r", "client", Fault::Drop(DropKind::Reset));
        rule.rate = Rate::new(0.0).unwrap();
        chaos.add_rule(rule).unwrap();
        let steady = chaos.steady_state("client", "payments");
        steady.never_sample();
        let hop = crate::observe::Touching::scoped(Touches::default(), async {
            let mut obs = chaos.observe_sampled(&steady).unwrap();
            let view = RequestView::new(Point::Client, "payments");
            assert!(!chaos.decide_observed(&view, Some(&mut obs)).is_inject());
            assert!(obs.touches.is_empty(), "noted in the request's scope");
            obs.start().is_some()
        });
        assert!(hop.await, "the matched hop is timed");

        // The served request itself, organic at the server and outside the sample, is
        // timed once it lends its touches to a scope for its hops.
        let server = chaos.steady_state("server", "");
        server.never_sample();
        let mut obs = chaos.observe_sampled(&server).unwrap();
        let view = RequestView::new(Point::Server, "");
        assert!(!chaos.decide_observed(&view, Some(&mut obs)).is_inject());
        assert!(obs.start().is_none() && obs.wants_scope());
        let _ = obs.lend();
        assert!(obs.start().is_some(), "timed: its hops may be matched");
    }
}
