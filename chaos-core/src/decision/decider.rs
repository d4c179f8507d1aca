//! The decider: which rule (or trusted directive) injects into one request, under its
//! schedule, rate, sticky cohort and limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::time::Instant;

use super::permit::Permit;
use super::rng::RngSource;
use super::rule::{CompiledRule, Sticky};
use super::state::RuleState;
use super::touches::Touch;
use crate::context::ChaosContext;
use crate::index::RuleIndex;
use crate::outcome::Breach;
use crate::request::RequestView;
use crate::rules::RuleSet;
use crate::rules::{Fault, Mode};

/// A fault decided for one request, before the engine makes it an injection.
pub(crate) struct Decided {
    pub(crate) rule: Arc<str>,
    pub(crate) fault: Arc<Fault>,
    /// The scope it was counted in (the scenario tag), if any.
    pub(crate) scope: Option<Box<str>>,
    /// For a delay, the one drawn for this request.
    pub(crate) delay: Option<Duration>,
    /// The slots it holds; `None` for a shadow decision, which holds nothing.
    pub(crate) permit: Option<Permit>,
    /// The rule's metric attributes; `None` for a directive.
    #[cfg(feature = "otel")]
    pub(crate) attrs: Option<Arc<crate::otel::RuleAttrs>>,
}

/// What a decision tells on the way, besides its result.
pub(crate) trait Sink {
    /// A shadow-mode rule would have injected.
    fn shadow(&mut self, d: Decided);
    /// The request matched a rule, active, in one of its cohorts. `true` when its outcome
    /// will be recorded.
    fn touch(&mut self, t: Touch<'_>) -> bool;
    /// A guard judged on the way found a breach.
    fn breach(&mut self, rule: &Arc<RuleState>, breach: Breach);
}

/// What a decision reads: the rules in force, the random source and the engine's slots.
pub(crate) struct Decider<'a> {
    /// The rule set in force (its `max_active` and limits).
    pub(crate) set: &'a RuleSet,
    /// Its rules, compiled, in the set's order.
    pub(crate) rules: &'a [CompiledRule],
    /// The index that finds a request's candidates among them.
    pub(crate) index: &'a RuleIndex,
    pub(crate) rng: &'a RngSource,
    pub(crate) global: &'a crate::sync::Arc<AtomicU32>,
}

impl Decider<'_> {
    /// The first trusted directive or rule that injects into `req`, in that order.
    /// `sink` is told every rule matched on the way (its cohort), every shadow-mode rule
    /// that would have injected, and every guard breach found.
    pub(crate) fn decide(&self, req: &RequestView<'_>, sink: &mut dyn Sink) -> Option<Decided> {
        if let Some(ctx) = req.context
            && ctx.is_trusted()
            && !ctx.directives().is_empty()
            && let Some(d) = self.directive(req, ctx)
        {
            return Some(d);
        }
        if self.rules.is_empty() {
            return None;
        }
        let mut out = None;
        self.index.for_candidates(req, |i| {
            out = self.evaluate(&self.rules[i], req, sink);
            out.is_some()
        });
        out
    }

    #[cold]
    fn directive(&self, req: &RequestView<'_>, ctx: &ChaosContext) -> Option<Decided> {
        let point = req.point.name();
        for d in ctx.active_directives() {
            if d.point_name() != point || d.target.as_deref().is_some_and(|t| t != req.target) {
                continue;
            }
            if !d.rate.admits(self.rng.next()) {
                continue;
            }
            let Some(permit) = Permit::acquire(None, self.global, self.set.max_active) else {
                continue;
            };
            let scope = ctx.scenarios().first().map(String::as_str);
            return Some(self.decided(
                "x-chaos".into(),
                Arc::new(d.fault.clone()),
                scope,
                Some(permit),
                None,
            ));
        }
        None
    }

    /// Evaluates one rule whose conditions hold; `Some` when it injects.
    #[cold]
    fn evaluate(
        &self,
        rule: &CompiledRule,
        req: &RequestView<'_>,
        sink: &mut dyn Sink,
    ) -> Option<Decided> {
        let st = &rule.state;
        st.matched.fetch_add(1, Ordering::Relaxed);
        if st.is_aborted() || st.outcomes.budget_spent() {
            return None;
        }
        let now = Instant::now();
        if now >= st.expires_at {
            if st.expired_hits.fetch_add(1, Ordering::Relaxed) == 0 {
                expired(&rule.id);
            }
            return None;
        }
        // A guard due for judgement is judged before the rule injects again.
        if st.outcomes.judgement_due(now)
            && let Some(b) = st.outcomes.judge(now)
        {
            sink.breach(&rule.state, b);
            return None;
        }
        // Left alone from here on: the request is in the rule's control cohort.
        let control = |sink: &mut dyn Sink| {
            sink.touch(Touch::control(&rule.state));
            None
        };
        let scope_name: Option<&str> = rule.scenario.as_deref().or_else(|| {
            req.context
                .and_then(|c| c.scenarios().first().map(String::as_str))
        });
        let scope =
            (rule.schedule.is_some() || rule.max_hits.is_some()).then(|| st.scope(scope_name));
        if let (Some(max), Some(sc)) = (rule.max_hits, &scope)
            && sc.hits.load(Ordering::Acquire) >= max
        {
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let (Some(sched), Some(sc)) = (&rule.schedule, &scope)
            && !sched.step(sc.seen.fetch_add(1, Ordering::AcqRel))
        {
            return control(sink);
        }
        let rate = rule.rate_now(now);
        if rate.fraction() < 1.0 || rule.sticky.is_some() {
            // Sticky: the key's hash is the draw, so a key always gets the same decision and
            // a cohort at 1% is inside the cohort at 5%. A request without the key is never
            // in the cohort.
            let draw = match &rule.sticky {
                Some(Sticky::Header(h)) => match req.headers.and_then(|m| m.get(h)) {
                    Some(v) => xxhash_rust::xxh3::xxh3_64(v.as_bytes()),
                    None => return control(sink),
                },
                Some(Sticky::Scenario) => match scope_name {
                    Some(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
                    None => return control(sink),
                },
                None => self.rng.next(),
            };
            if !rate.admits(draw) {
                return control(sink);
            }
        }
        if rule.mode == Mode::Shadow {
            st.shadowed.fetch_add(1, Ordering::Relaxed);
            sink.touch(Touch::experiment(&rule.state, true, false));
            sink.shadow(self.decided(
                rule.id.clone(),
                rule.fault.clone(),
                scope_name,
                None,
                Some(st),
            ));
            return None;
        }
        let Some(permit) = Permit::acquire(
            Some((&rule.state, rule.max_active)),
            self.global,
            self.set.max_active,
        ) else {
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return control(sink);
        };
        // An error budget: each injection holds a unit until its outcome is known, so the
        // budget is never overspent by injections in flight.
        let budget = st.outcomes.budget();
        let budgeted = budget.is_some();
        if budget.is_some_and(|b| !b.reserve()) {
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return control(sink);
        }
        if let (Some(max), Some(sc)) = (rule.max_hits, &scope) {
            let took = sc
                .hits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok();
            if !took {
                // Another request took the last hit; `permit` gives the slots back.
                st.outcomes.settle(false);
                st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        if !sink.touch(Touch::experiment(&rule.state, false, budgeted)) && budgeted {
            // Nowhere to learn the outcome: a budgeted rule does not inject blind.
            st.outcomes.settle(false);
            if let (Some(_), Some(sc)) = (rule.max_hits, &scope) {
                sc.hits.fetch_sub(1, Ordering::AcqRel);
            }
            return None;
        }
        st.injected.fetch_add(1, Ordering::Relaxed);
        Some(self.decided(
            rule.id.clone(),
            rule.fault.clone(),
            scope_name,
            Some(permit),
            Some(st),
        ))
    }

    fn decided(
        &self,
        rule: Arc<str>,
        fault: Arc<Fault>,
        scope: Option<&str>,
        permit: Option<Permit>,
        #[cfg_attr(not(feature = "otel"), allow(unused_variables))] state: Option<&Arc<RuleState>>,
    ) -> Decided {
        let delay = match &*fault {
            Fault::Delay(d) => Some(d.sample(
                self.rng.next(),
                self.rng.next(),
                self.set.limits.max_delay.0,
            )),
            _ => None,
        };
        Decided {
            rule,
            fault,
            scope: scope.map(Into::into),
            delay,
            permit,
            #[cfg(feature = "otel")]
            attrs: state.map(|s| s.attrs.clone()),
        }
    }
}

/// Says, once per rule, that a rule matched after it expired: an expiry is never silent.
#[cold]
fn expired(rule: &str) {
    tracing::warn!(
        target: "chaos",
        rule,
        "rule expired: it matched a request but injects nothing (its ttl, expires_at or defaults.ttl ran out)"
    );
}
