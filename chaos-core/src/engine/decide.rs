//! Deciding for a request: the decider run over the rules in force, with what it meets on
//! the way noted in the request's observation (or the request a server layer serves), and
//! an injection made of what it decided.

use std::sync::Arc;
use std::time::Duration;

use super::compiled::Compiled;
use super::{Chaos, Event};
use crate::decision::{Decided, Observation, RuleState, Sink, Touch, touch_in_scope};
use crate::inject::{Decision, Injection};
use crate::outcome::Breach;
use crate::request::RequestView;

impl Chaos {
    /// Decides what to do with a request.
    ///
    /// With no rules and no directives possible this is one relaxed atomic load. With rules,
    /// a request only looks at rules of its point and target (and of its scenario tags).
    /// The path that matches nothing allocates nothing, takes no lock and draws no random
    /// number.
    ///
    /// The rules the request matches are counted in their cohorts only when it is part of
    /// a request a server layer serves; adapters that observe their own outcome use
    /// [`decide_observed`](Chaos::decide_observed). A rule with an error budget
    /// (`max_errors`) injects only where its outcome is seen.
    #[inline]
    pub fn decide(&self, req: &RequestView<'_>) -> Decision {
        if !self.is_armed() {
            return Decision::Pass;
        }
        self.decide_armed(req, None)
    }

    /// Decides, noting the rules the request matches (with their cohorts) in `obs`, or in
    /// the request a server layer serves when the work is part of one. See
    /// [`observe`](crate::observe).
    #[inline]
    pub fn decide_observed(
        &self,
        req: &RequestView<'_>,
        obs: Option<&mut Observation>,
    ) -> Decision {
        if !self.is_armed() {
            return Decision::Pass;
        }
        self.decide_armed(req, obs)
    }

    fn decide_armed(&self, req: &RequestView<'_>, obs: Option<&mut Observation>) -> Decision {
        self.with_rules(|compiled| self.decide_with(compiled, req, obs))
    }

    #[inline]
    fn decide_with(
        &self,
        compiled: &Compiled,
        req: &RequestView<'_>,
        mut obs: Option<&mut Observation>,
    ) -> Decision {
        if let Some(o) = obs.as_deref_mut() {
            o.downstream = compiled.downstream;
        }
        let max_hang = compiled.set.limits.max_hang.0;
        let mut sink = Noted {
            chaos: self,
            req,
            max_hang,
            obs,
        };
        let decided = self.decider(compiled).decide(req, &mut sink);
        if let Some(o) = sink.obs {
            o.time_if_matched();
        }
        #[cfg(feature = "test-util")]
        if self.hop_recorders().on() {
            self.hop_recorders().note(req);
        }
        match decided {
            Some(d) => {
                let inj = self.injection(d, req, max_hang);
                self.record(&inj, false);
                Decision::Inject(inj)
            }
            None => Decision::Pass,
        }
    }

    #[cold]
    fn injection(&self, d: Decided, req: &RequestView<'_>, max_hang: Duration) -> Injection {
        #[cfg(feature = "test-util")]
        let gate = self.pause_gate(&d.rule);
        Injection::new(
            d,
            req.point.name(),
            req.target,
            max_hang,
            self.kill_switch().clone(),
            #[cfg(feature = "test-util")]
            gate,
        )
    }

    /// Says that a fault was injected (or would have been): a tracing event, an engine
    /// event, the journal, the counter.
    #[cold]
    fn record(&self, inj: &Injection, shadow: bool) {
        if !shadow {
            self.count_injected();
        }
        let i = inj;
        tracing::info!(
            target: "chaos",
            rule = %i.rule_id(),
            fault = %i.fault(),
            point = %i.point(),
            target = %i.target(),
            scope = i.scope(),
            shadow,
            "{}",
            if shadow { "fault would be injected (shadow)" } else { "fault injected" },
        );
        #[cfg(feature = "otel")]
        self.metrics().injection(
            i.attrs(),
            i.fault(),
            i.point(),
            i.target(),
            i.delay(),
            shadow,
        );
        if self.events().wanted() {
            self.events().emit(Event::Injected {
                rule: i.rule_id().to_owned(),
                fault: i.fault().to_string(),
                point: i.point().to_owned(),
                target: i.target().to_owned(),
                scope: i.scope().map(str::to_owned),
                shadow,
            });
        }
        #[cfg(feature = "test-util")]
        self.journal_ref().push(crate::journal::JournalEntry {
            rule: i.rule_id().to_owned(),
            point: i.point().to_owned(),
            target: i.target().to_owned(),
            fault: i.fault().to_string(),
            scope: i.scope().map(str::to_owned),
            shadow,
        });
    }
}

/// Where a decision tells what it met on the way.
struct Noted<'a, 'r> {
    chaos: &'a Chaos,
    req: &'a RequestView<'r>,
    max_hang: Duration,
    obs: Option<&'a mut Observation>,
}

impl Sink for Noted<'_, '_> {
    #[cold]
    fn shadow(&mut self, d: Decided) {
        let inj = self.chaos.injection(d, self.req, self.max_hang);
        self.chaos.record(&inj, true);
    }

    #[cold]
    fn touch(&mut self, t: Touch<'_>) -> bool {
        if let Some(o) = &mut self.obs {
            // Matched: timed, whichever observation the touch is noted in.
            o.matched = true;
        }
        // The request a server layer serves first: its outcome is judged where it leaves
        // the process.
        if let Some(held) = touch_in_scope(t) {
            return held;
        }
        match &mut self.obs {
            Some(o) => o.touches.add(t),
            None => false,
        }
    }

    #[cold]
    fn breach(&mut self, rule: &Arc<RuleState>, breach: Breach) {
        self.chaos.abort_breach(rule, breach);
    }
}
