//! Observing one piece of work at a point, for the steady state and for the cohorts of
//! the rules it matched: the touches a decision notes (a request matched a rule, in one of
//! its cohorts), where it notes them, and the [`Observation`] that carries them to the
//! work's outcome.
//!
//! An adapter starts an [`Observation`] when the engine is armed
//! ([`Chaos::observe`](crate::Chaos::observe)), decides with it
//! ([`Chaos::decide_observed`](crate::Chaos::decide_observed)), and finishes it with the
//! work's outcome ([`Observation::finish`]). The rules the work matched are
//! noted in it, each with its cohort: **experiment** (the fault was applied) or
//! **control** (matched and left alone). Where the work is part of a request a server
//! layer serves, they are noted in the request instead (a task-local the server layer
//! opens with [`Touching`]), so each cohort is judged by what the request's caller saw
//! where it left this process, whichever hop the fault was injected at.
//!
//! Nothing here allocates or locks; an observation is a clock reading and a few slots.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use super::state::RuleState;
use crate::outcome::{Breach, Cohort};

/// Rules one request can be in the cohorts of; a request matched by more is counted for
/// the first ones.
const MAX_TOUCHES: usize = 4;

/// A decision's note that a request matched a rule (active, not aborted).
#[derive(Clone, Copy)]
pub(crate) struct Touch<'a> {
    pub(crate) rule: &'a Arc<RuleState>,
    pub(crate) cohort: Cohort,
    /// The rule is in shadow mode: its experiment injects nothing.
    pub(crate) shadow: bool,
    /// The request holds a unit of the rule's error budget.
    pub(crate) reserved: bool,
}

impl<'a> Touch<'a> {
    /// In the rule's control cohort: matched, and left alone.
    pub(crate) fn control(rule: &'a Arc<RuleState>) -> Touch<'a> {
        Touch {
            rule,
            cohort: Cohort::Control,
            shadow: false,
            reserved: false,
        }
    }

    /// In the rule's experiment cohort.
    pub(crate) fn experiment(rule: &'a Arc<RuleState>, shadow: bool, reserved: bool) -> Touch<'a> {
        Touch {
            rule,
            cohort: Cohort::Experiment,
            shadow,
            reserved,
        }
    }
}

/// What follows from a request's outcome for a rule it touched.
pub(crate) enum Settled {
    /// The request spent the last of the rule's error budget: it retires.
    BudgetSpent,
    /// The rule's guard, judged now, found a breach.
    Breach(Breach),
}

/// The rules a request matched, each with its cohort.
#[derive(Default)]
pub struct Touches {
    rules: [Option<Arc<RuleState>>; MAX_TOUCHES],
    /// Bit i: rule i's cohort is the experiment.
    experiment: u8,
    /// Bit i: rule i is in shadow mode (its experiment injected nothing).
    shadow: u8,
    /// Error-budget units rule i holds for this request.
    reserved: [u8; MAX_TOUCHES],
    /// Rules noted.
    len: u8,
}

impl fmt::Debug for Touches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(r) = r {
                let cohort = if self.experiment & (1 << i) != 0 {
                    "experiment"
                } else {
                    "control"
                };
                l.entry(&(&*r.id, cohort));
            }
        }
        l.finish()
    }
}

impl Touches {
    /// Notes a touch. `false` when there is no room (the caller gives back the unit of
    /// budget it holds).
    pub(crate) fn add(&mut self, t: Touch<'_>) -> bool {
        let Touch {
            rule,
            cohort,
            shadow,
            reserved,
        } = t;
        let mut free = None;
        for (i, slot) in self.rules.iter().enumerate() {
            match slot {
                // The same rule again (a second call to the same dependency): the request
                // is in its experiment if any call was.
                Some(r) if Arc::ptr_eq(r, rule) => {
                    if reserved && self.reserved[i] == u8::MAX {
                        // No room to hold one more unit: the caller gives it back.
                        return false;
                    }
                    self.mark(i, cohort, shadow, reserved);
                    return true;
                }
                None if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let Some(i) = free else { return false };
        self.rules[i] = Some(rule.clone());
        self.len += 1;
        self.mark(i, cohort, shadow, reserved);
        true
    }

    fn mark(&mut self, i: usize, cohort: Cohort, shadow: bool, reserved: bool) {
        if cohort == Cohort::Experiment {
            self.experiment |= 1 << i;
            if shadow {
                self.shadow |= 1 << i;
            } else {
                self.shadow &= !(1 << i);
            }
        }
        self.reserved[i] += u8::from(reserved);
    }

    /// Whether a fault was injected into the request (not only decided in shadow mode).
    pub fn injected(&self) -> bool {
        self.experiment & !self.shadow != 0
    }

    /// Whether the request matched any rule.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn absorb(&mut self, other: Touches) {
        let mut other = other;
        for i in 0..MAX_TOUCHES {
            let Some(rule) = other.rules[i].take() else {
                continue;
            };
            other.len -= 1;
            let cohort = if other.experiment & (1 << i) != 0 {
                Cohort::Experiment
            } else {
                Cohort::Control
            };
            let shadow = other.shadow & (1 << i) != 0;
            let units = std::mem::take(&mut other.reserved[i]);
            let touch = Touch {
                rule: &rule,
                cohort,
                shadow,
                reserved: false,
            };
            let kept = if self.add(touch) {
                let j = self.position(&rule);
                let room = u8::MAX - self.reserved[j];
                self.reserved[j] += units.min(room);
                units.min(room)
            } else {
                0
            };
            // Units with no room to be held are given back.
            for _ in kept..units {
                rule.outcomes.settle(false);
            }
        }
    }

    fn position(&self, rule: &Arc<RuleState>) -> usize {
        self.rules
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| Arc::ptr_eq(r, rule)))
            .expect("just added")
    }

    /// Records the request's outcome in each rule's cohort, settles the budgets, and
    /// judges the guards that are due; `then` acts on what follows.
    #[cold]
    pub(crate) fn finish(
        &mut self,
        start: Instant,
        now: Instant,
        error: bool,
        #[cfg(feature = "otel")] metrics: &crate::otel::Metrics,
        mut then: impl FnMut(&Arc<RuleState>, Settled),
    ) {
        let latency = now.saturating_duration_since(start);
        for i in 0..MAX_TOUCHES {
            let Some(rule) = self.rules[i].take() else {
                continue;
            };
            let cohort = if self.experiment & (1 << i) != 0 {
                Cohort::Experiment
            } else {
                Cohort::Control
            };
            let o = &rule.outcomes;
            o.record(cohort, now, latency, error);
            #[cfg(feature = "otel")]
            metrics.cohort(&rule.attrs, cohort == Cohort::Experiment, latency, error);
            let units = std::mem::take(&mut self.reserved[i]);
            for u in 0..units {
                // One request spends one unit at most, however many calls it made.
                if o.settle(error && u == 0) {
                    then(&rule, Settled::BudgetSpent);
                }
            }
            if o.judgement_due(now)
                && let Some(b) = o.judge(now)
            {
                then(&rule, Settled::Breach(b));
            }
        }
        self.experiment = 0;
        self.shadow = 0;
        self.len = 0;
    }
}

impl Drop for Touches {
    #[inline]
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // A request dropped before its outcome (its caller went away): give back the
        // budget it held, count nothing.
        for i in 0..MAX_TOUCHES {
            if let Some(rule) = &self.rules[i] {
                for _ in 0..self.reserved[i] {
                    rule.outcomes.settle(false);
                }
            }
        }
    }
}

tokio::task_local! {
    static TOUCHES: RefCell<Touches>;
}

/// Notes a touch in the current request's scope, if there is one: `Some(held)`.
pub(crate) fn touch_in_scope(t: Touch<'_>) -> Option<bool> {
    TOUCHES
        .try_with(|touches| match touches.try_borrow_mut() {
            Ok(mut touches) => touches.add(t),
            Err(_) => false,
        })
        .ok()
}

/// Whether the current task serves a request whose touches a server layer collects.
pub fn in_request_scope() -> bool {
    TOUCHES.try_with(|_| ()).is_ok()
}

/// One piece of work observed at a point: when it began and the rules it matched.
///
/// See the [module docs](self).
#[must_use = "an observation records nothing until it is finished"]
pub struct Observation {
    /// When the work began, if it is timed.
    pub(crate) start: Option<Instant>,
    pub(crate) touches: Touches,
    /// Whether rules exist at other points than `server` (so a request's hops can match).
    pub(crate) downstream: bool,
    /// Whether a rule matched the work (its touch may be noted in the request's scope,
    /// not here).
    pub(crate) matched: bool,
}

impl fmt::Debug for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observation")
            .field("start", &self.start)
            .field("touches", &self.touches)
            .finish()
    }
}

impl Observation {
    /// Whether the request's hops can match rules, so a server layer should open a scope
    /// for their touches (known once the observation decided): a request when only
    /// `server` rules exist costs no scope.
    pub fn wants_scope(&self) -> bool {
        self.downstream && !in_request_scope()
    }

    /// An observation of work that begins now, timed if `timed` (else counted only,
    /// unless a rule matches it: see [`time_if_matched`](Self::time_if_matched)).
    #[inline]
    pub(crate) fn start_now(timed: bool) -> Observation {
        Observation {
            start: timed.then(Instant::now),
            touches: Touches::default(),
            downstream: false,
            matched: false,
        }
    }

    /// Starts the clock for work a rule matched (either cohort), if it is not running
    /// yet: every such request is timed.
    #[inline]
    pub(crate) fn time_if_matched(&mut self) {
        if self.matched {
            self.time();
        }
    }

    /// Starts the clock, if it is not running yet.
    fn time(&mut self) {
        if self.start.is_none() {
            self.start = Some(Instant::now());
        }
    }

    /// When the work began, if it is timed: every request a rule matched is; an organic
    /// one (matched by no rule) only if it is in its steady state's sample (see
    /// [`Chaos::observe_sampled`](crate::Chaos::observe_sampled)).
    pub fn start(&self) -> Option<Instant> {
        self.start
    }

    /// Whether a fault was injected into the work, here or (for a request a server layer
    /// serves) at any hop inside it.
    pub fn injected(&self) -> bool {
        self.touches.injected()
    }

    /// The rules noted so far, to carry into the request's scope ([`Touching::scoped`]).
    /// The work is timed from here on if it was not already: a hop in the scope may be
    /// matched.
    pub fn lend(&mut self) -> Touches {
        // The request's hops may be matched: it is timed, as any matched request.
        self.time();
        std::mem::take(&mut self.touches)
    }

    /// Takes back what was lent, with what the request's hops added.
    pub fn take_back(&mut self, touches: Touches) {
        if self.touches.is_empty() {
            // Nothing noted meanwhile: what comes back is the whole story.
            self.touches = touches;
        } else if !touches.is_empty() {
            self.touches.absorb(touches);
        }
    }
}

pin_project! {
    /// A request's future with its touches in a task-local scope, so the hops inside it
    /// (a client call, a statement, [`Chaos::inject`]) note the rules they match in the
    /// request. A server layer wraps the inner service's future in it.
    #[derive(Debug)]
    pub struct Touching<F: Future> {
        #[pin]
        inner: TouchingInner<F>,
    }
}

pin_project! {
    #[project = TouchingProj]
    #[derive(Debug)]
    enum TouchingInner<F: Future> {
        Scoped { #[pin] fut: TaskLocalFuture<RefCell<Touches>, F> },
        Plain { #[pin] fut: F },
    }
}

impl<F: Future> Touching<F> {
    /// `fut` as it is: no scope.
    #[inline]
    pub fn plain(fut: F) -> Touching<F> {
        Touching {
            inner: TouchingInner::Plain { fut },
        }
    }

    /// `fut` with `touches` in scope.
    pub fn scoped(touches: Touches, fut: F) -> Touching<F> {
        Touching {
            inner: TouchingInner::Scoped {
                fut: TOUCHES.scope(RefCell::new(touches), fut),
            },
        }
    }

    /// The touches back, once the future is done (`None` without a scope).
    pub fn take_touches(self: Pin<&mut Self>) -> Option<Touches> {
        match self.project().inner.project() {
            TouchingProj::Scoped { fut } => fut.take_value().map(RefCell::into_inner),
            TouchingProj::Plain { .. } => None,
        }
    }
}

impl<F: Future> Future for Touching<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().inner.project() {
            TouchingProj::Scoped { fut } => fut.poll(cx),
            TouchingProj::Plain { fut } => fut.poll(cx),
        }
    }
}
