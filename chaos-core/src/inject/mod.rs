//! Applying a decision: the [`Injection`] an adapter acts on, the one [`Action`] it maps
//! to its world, and a generic injection point for any async work.

mod action;
mod error;
mod wait;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use self::action::Action;
#[cfg(feature = "http-body")]
pub use self::action::{HttpAction, HttpSide};
pub(crate) use self::error::FaultKind;
pub use self::error::InjectedFault;
pub use self::wait::Wait;
use crate::context::ChaosContext;
use crate::decision::{Breach, Cohort, Decided, Permit, RuleState, Sink};
use crate::engine::Chaos;
use crate::engine::{Event, KillSwitch};
use crate::observe::{self, Observation};
use crate::request::{Point, RequestView};
use crate::rules::Fault;

/// What to do with a request.
///
/// An adapter matches on it: [`Decision::Pass`] costs nothing, an [`Injection`] says what
/// to do and holds the concurrency slot while it is done.
///
/// ```
/// use chaos_core::{Chaos, Decision, Point, RequestView};
/// use chaos_core::rules::{Fault, Rule, DropKind};
///
/// let chaos = Chaos::new();
/// chaos.add_rule(Rule::new("reset", "client", Fault::Drop(DropKind::Reset)).with_target("payments")).unwrap();
/// match chaos.decide(&RequestView::new(Point::Client, "payments")) {
///     Decision::Inject(i) => assert!(matches!(i.fault(), Fault::Drop(DropKind::Reset))),
///     Decision::Pass => unreachable!(),
/// }
/// ```
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Nothing: let it through untouched.
    Pass,
    /// Inject this fault.
    Inject(Injection),
}

impl Decision {
    /// Whether the decision injects.
    pub fn is_inject(&self) -> bool {
        matches!(self, Decision::Inject(_))
    }
}

/// A fault to inject into one request.
///
/// It is also the concurrency permit of its rule (`max_active`) and of the engine: the slot
/// is freed when the `Injection` is dropped, so keep it alive for as long as the injected
/// work lasts. An adapter turns it into what to do at its point with
/// [`action`](Injection::action) (any point) or [`http_action`](Injection::http_action)
/// (HTTP points, feature `http-body`).
pub struct Injection {
    pub(crate) i: Box<Parts>,
}

/// The fields of an [`Injection`], boxed so a [`Decision`] is one pointer wide: the path
/// that passes moves 8 bytes, not a whole injection.
pub(crate) struct Parts {
    pub(crate) kill: Arc<KillSwitch>,
    pub(crate) rule: Arc<str>,
    pub(crate) fault: Arc<Fault>,
    pub(crate) point: Box<str>,
    pub(crate) target: Box<str>,
    pub(crate) scope: Option<Box<str>>,
    pub(crate) delay: Option<Duration>,
    pub(crate) max_hang: Duration,
    /// The slots it holds; `None` for a shadow decision.
    _permit: Option<Permit>,
    #[cfg(feature = "otel")]
    attrs: Option<Arc<crate::otel::RuleAttrs>>,
    #[cfg(feature = "test-util")]
    pub(crate) gate: Option<crate::pause::PauseGate>,
}

impl fmt::Debug for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injection")
            .field("rule", &self.i.rule)
            .field("fault", &self.i.fault)
            .field("point", &self.i.point)
            .field("target", &self.i.target)
            .field("scope", &self.i.scope)
            .field("delay", &self.i.delay)
            .finish_non_exhaustive()
    }
}

impl Injection {
    /// The id of the rule that decided, or `x-chaos` for a per-request directive.
    pub fn rule_id(&self) -> &str {
        &self.i.rule
    }

    /// The fault.
    pub fn fault(&self) -> &Fault {
        &self.i.fault
    }

    /// For a delay, the delay drawn for this request (already capped by `limits.max_delay`).
    pub fn delay(&self) -> Option<Duration> {
        self.i.delay
    }

    /// The scope the injection was counted in (the scenario tag), if any.
    pub fn scope(&self) -> Option<&str> {
        self.i.scope.as_deref()
    }

    /// The point of the request.
    pub fn point(&self) -> &str {
        &self.i.point
    }

    /// The target of the request.
    pub fn target(&self) -> &str {
        &self.i.target
    }

    /// The ceiling on hangs and pauses (`limits.max_hang`).
    pub fn max_hang(&self) -> Duration {
        self.i.max_hang
    }

    /// Whether the kill switch is on now (a body fault stops when it is).
    pub fn is_killed(&self) -> bool {
        self.i.kill.is_on()
    }

    #[cfg(feature = "http-body")]
    pub(crate) fn kill_switch(&self) -> &Arc<KillSwitch> {
        &self.i.kill
    }

    pub(crate) fn error(&self, kind: FaultKind) -> InjectedFault {
        InjectedFault::new(self.i.rule.clone(), kind)
    }

    /// The error of a connection this injection broke ([`InjectedFault::is_reset`]).
    #[cfg(feature = "http-body")]
    pub(crate) fn reset_error(&self) -> InjectedFault {
        self.error(FaultKind::Reset)
    }

    /// The error of a call this injection made time out ([`InjectedFault::is_timeout`]).
    pub fn timeout_error(&self) -> InjectedFault {
        self.error(FaultKind::Timeout)
    }

    /// Applies the fault to `work`, for points that have no protocol of their own (see
    /// [`Action`] for what each fault does):
    ///
    /// | fault | result |
    /// |---|---|
    /// | `delay`, pause point | waits, then runs `work` |
    /// | `error: KIND` | `Err`, `work` never runs |
    /// | `abort` | `Err` carrying the status, `work` never runs |
    /// | `drop: reset` | `Err` ([`InjectedFault::is_reset`]) |
    /// | `drop: hang` | pending until the caller gives up; at the `max_hang` ceiling `Err` ([`InjectedFault::is_timeout`]) |
    /// | `body` | runs `work` untouched (body faults belong to HTTP adapters) |
    ///
    /// If the kill switch is flipped during a wait, `work` runs as if nothing was injected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chaos_core::{Chaos, Decision, Point, RequestView};
    /// use chaos_core::rules::{Delay, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("slow", "server", Fault::Delay(Delay::Fixed(Duration::from_secs(2))))).unwrap();
    /// let Decision::Inject(i) = chaos.decide(&RequestView::new(Point::Server, "")) else { unreachable!() };
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(i.run(async { "done" }).await.unwrap(), "done");
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`].
    pub async fn run<F: Future>(self, work: F) -> Result<F::Output, InjectedFault> {
        match self.action() {
            Action::Wait(wait) => {
                let (inj, waited) = wait.await;
                waited?;
                let out = work.await;
                // The slot is held until the work is done.
                drop(inj);
                Ok(out)
            }
            Action::Fail(e) => Err(e),
            Action::Proceed(inj) => {
                let out = work.await;
                drop(inj);
                Ok(out)
            }
        }
    }
}

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

    fn decide_armed(&self, req: &RequestView<'_>, mut obs: Option<&mut Observation>) -> Decision {
        let compiled = self.compiled();
        if let Some(o) = obs.as_deref_mut() {
            o.set_downstream(compiled.downstream);
        }
        let max_hang = compiled.set.limits.max_hang.0;
        let mut sink = Noted {
            chaos: self,
            req,
            max_hang,
            obs,
        };
        match self.decider(&compiled).decide(req, &mut sink) {
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
        Injection {
            i: Box::new(Parts {
                kill: self.kill_switch().clone(),
                #[cfg(feature = "test-util")]
                gate: self.pause_gate(&d.rule),
                rule: d.rule,
                fault: d.fault,
                point: req.point.name().into(),
                target: req.target.into(),
                scope: d.scope,
                delay: d.delay,
                max_hang,
                _permit: d.permit,
                #[cfg(feature = "otel")]
                attrs: d.attrs,
            }),
        }
    }

    /// Says that a fault was injected (or would have been): a tracing event, an engine
    /// event, the journal, the counter.
    #[cold]
    fn record(&self, inj: &Injection, shadow: bool) {
        if !shadow {
            self.count_injected();
        }
        let i = &inj.i;
        tracing::info!(
            target: "chaos",
            rule = %i.rule,
            fault = %i.fault,
            point = %i.point,
            target = %i.target,
            scope = i.scope.as_deref(),
            shadow,
            "{}",
            if shadow { "fault would be injected (shadow)" } else { "fault injected" },
        );
        #[cfg(feature = "otel")]
        self.metrics().injection(
            i.attrs.as_deref(),
            &i.fault,
            &i.point,
            &i.target,
            i.delay,
            shadow,
        );
        if self.events().wanted() {
            self.events().emit(Event::Injected {
                rule: i.rule.to_string(),
                fault: i.fault.to_string(),
                point: i.point.to_string(),
                target: i.target.to_string(),
                scope: i.scope.as_deref().map(str::to_owned),
                shadow,
            });
        }
        #[cfg(feature = "test-util")]
        self.journal_ref().push(crate::journal::JournalEntry {
            rule: i.rule.to_string(),
            point: i.point.to_string(),
            target: i.target.to_string(),
            fault: i.fault.to_string(),
            scope: i.scope.as_deref().map(str::to_owned),
            shadow,
        });
    }

    /// A generic injection point: decides for `point` and `target` with the current task's
    /// chaos context, and applies the fault around `work` (see [`Injection::run`]).
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use chaos_core::rules::{ErrorKind, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("queue-down", "queue.publish", Fault::Error(ErrorKind::Unavailable))).unwrap();
    ///
    /// let sent = chaos.inject("queue.publish", "orders", async { "sent" }).await;
    /// assert!(sent.unwrap_err().is_unavailable());
    /// let other = chaos.inject("cache.get", "orders", async { "hit" }).await;
    /// assert_eq!(other.unwrap(), "hit");
    /// # }
    /// ```
    ///
    /// The decision is taken when the future is first polled, in the task that polls it, so
    /// the task-local context is the one in force there (`ctx.scope(chaos.inject(..))`
    /// works). Nothing is cloned or allocated when nothing matches.
    ///
    /// While the engine is armed, each call's outcome is recorded in the steady state of
    /// its point and target ([`Chaos::steady_state`]) and, outside a request a server
    /// layer serves, in the cohorts of the rules it matched: an error is an injected
    /// failure (the work's own output is the caller's to judge; use
    /// [`inject_fallible`](Chaos::inject_fallible) when it is a `Result`).
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`].
    pub async fn inject<F: Future>(
        &self,
        point: &str,
        target: &str,
        work: F,
    ) -> Result<F::Output, InjectedFault> {
        self.inject_judged(point, target, work, |_| false).await
    }

    /// [`inject`](Chaos::inject) for work that can fail on its own: its `Err` counts as an
    /// error in the steady state and the cohorts, as an injected failure does.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// let out = chaos.inject_fallible("cache.get", "orders", async { Err::<u8, _>("miss") }).await;
    /// assert_eq!(out.unwrap(), Err("miss"));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`]; the work's own result is inside `Ok`.
    pub async fn inject_fallible<F, T, E>(
        &self,
        point: &str,
        target: &str,
        work: F,
    ) -> Result<Result<T, E>, InjectedFault>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.inject_judged(point, target, work, Result::is_err)
            .await
    }

    /// The generic injection point: `failed` says whether the work's own output is an
    /// error (an injected failure always is).
    async fn inject_judged<F: Future>(
        &self,
        point: &str,
        target: &str,
        work: F,
        failed: impl FnOnce(&F::Output) -> bool,
    ) -> Result<F::Output, InjectedFault> {
        self.declare(point, target);
        let Some(mut obs) = self.observe() else {
            return Ok(work.await);
        };
        let decision = ChaosContext::with_current(|ctx| {
            self.decide_observed(
                &RequestView::new(Point::from_name(point), target).context(ctx),
                Some(&mut obs),
            )
        });
        let (out, injected) = match decision {
            Decision::Pass => (Ok(work.await), false),
            Decision::Inject(i) => (i.run(work).await, true),
        };
        let error = out.as_ref().map_or(true, failed);
        obs.finish_named(self, point, target, error, injected);
        out
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
    fn touch(
        &mut self,
        rule: &Arc<RuleState>,
        cohort: Cohort,
        shadow: bool,
        reserved: bool,
    ) -> bool {
        // The request a server layer serves first: its outcome is judged where it leaves
        // the process.
        if let Some(held) = observe::touch_in_scope(rule, cohort, shadow, reserved) {
            return held;
        }
        match &mut self.obs {
            Some(o) => o.touches_mut().add(rule, cohort, shadow, reserved),
            None => false,
        }
    }

    #[cold]
    fn breach(&mut self, rule: &Arc<RuleState>, breach: Breach) {
        self.chaos.abort_breach(rule, breach);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_pointer_sized() {
        assert_eq!(
            std::mem::size_of::<Decision>(),
            std::mem::size_of::<usize>()
        );
    }
}
