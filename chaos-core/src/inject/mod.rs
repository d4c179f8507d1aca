//! Applying a decision: the [`Injection`] an adapter acts on, the one [`Action`] it maps
//! to its world, and the [`InjectedFault`] a caller meets.

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
pub use self::error::{ChaosErrorExt, InjectedFault, Inside};
pub use self::wait::Wait;
use crate::decision::{Decided, Permit};
use crate::kill::KillSwitch;
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
        self.run_with(|| work).await
    }

    /// [`run`](Self::run) with work made only if it is to run: `work` is not called when
    /// the fault fails the call.
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`].
    pub async fn run_with<F: Future>(
        self,
        work: impl FnOnce() -> F,
    ) -> Result<F::Output, InjectedFault> {
        let held = self.ready().await?;
        let out = work().await;
        // The slot is held until the work is done.
        drop(held);
        Ok(out)
    }

    /// Does what the fault asks before the work (see [`Action`]): waits out a delay or a
    /// hang, and hands the injection back to hold for as long as the work lasts (a stream
    /// holds it until it ends), or fails as the fault asks. What [`run`](Self::run) does,
    /// for work that is not one future.
    ///
    /// ```
    /// use chaos_core::{Chaos, Decision, Point, RequestView};
    /// use chaos_core::rules::{ErrorKind, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("down", "queue", Fault::Error(ErrorKind::Unavailable))).unwrap();
    /// let Decision::Inject(i) = chaos.decide(&RequestView::new("queue".into(), "")) else { unreachable!() };
    /// assert!(i.ready().await.unwrap_err().is_unavailable());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`].
    pub async fn ready(self) -> Result<Injection, InjectedFault> {
        match self.action() {
            Action::Wait(wait) => {
                let (inj, waited) = wait.await;
                waited.map(|()| inj)
            }
            Action::Fail(e) => Err(e),
            Action::Proceed(inj) => Ok(inj),
        }
    }
}

impl Injection {
    /// An injection of what `d` decided, at `point` and `target`.
    pub(crate) fn new(
        d: Decided,
        point: &str,
        target: &str,
        max_hang: Duration,
        kill: Arc<KillSwitch>,
        #[cfg(feature = "test-util")] gate: Option<crate::pause::PauseGate>,
    ) -> Injection {
        Injection {
            i: Box::new(Parts {
                kill,
                #[cfg(feature = "test-util")]
                gate,
                rule: d.rule,
                fault: d.fault,
                point: point.into(),
                target: target.into(),
                scope: d.scope,
                delay: d.delay,
                max_hang,
                _permit: d.permit,
                #[cfg(feature = "otel")]
                attrs: d.attrs,
            }),
        }
    }

    /// The rule's metric attributes (`None` for a directive).
    #[cfg(feature = "otel")]
    pub(crate) fn attrs(&self) -> Option<&crate::otel::RuleAttrs> {
        self.i.attrs.as_deref()
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
