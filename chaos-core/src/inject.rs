//! Applying a decision: the [`Injection`] an adapter acts on, and a generic injection point
//! for any async work.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::compile::RuleState;
use crate::engine::Shared;
use crate::request::{Point, RequestView};
use crate::rules::{AbortKind, DropKind, ErrorKind, Fault};
use crate::{Chaos, ChaosContext};

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
/// work lasts.
pub struct Injection {
    pub(crate) i: Box<Parts>,
}

/// The fields of an [`Injection`], boxed so a [`Decision`] is one pointer wide: the path
/// that passes moves 8 bytes, not a whole injection.
pub(crate) struct Parts {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rule: Arc<str>,
    pub(crate) fault: Arc<Fault>,
    pub(crate) point: Box<str>,
    pub(crate) target: Box<str>,
    pub(crate) scope: Option<Box<str>>,
    pub(crate) delay: Option<Duration>,
    pub(crate) max_hang: Duration,
    pub(crate) state: Option<Arc<RuleState>>,
    pub(crate) armed: bool,
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

/// How a wait of [`Injection::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitOutcome {
    /// The delay elapsed (for a hang or pause: the `limits.max_hang` ceiling was reached).
    Elapsed,
    /// The kill switch was flipped: go on as if nothing was injected.
    Killed,
    /// A pause point was released.
    Released,
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

    /// The error this fault stands for where a call fails with an error rather than a
    /// response: `error: KIND`, `abort` (carrying its status), `drop: reset` (a reset
    /// connection) and `drop: hang` (a timeout, for when the hang reached its ceiling).
    /// `None` for faults that are not errors (delay, body, pause).
    pub fn to_error(&self) -> Option<InjectedFault> {
        let kind = match &*self.i.fault {
            Fault::Error(k) => FaultKind::Error(*k),
            Fault::Abort(a) => FaultKind::Abort(a.kind),
            Fault::Drop(DropKind::Reset) => FaultKind::Reset,
            Fault::Drop(DropKind::Hang) => FaultKind::Timeout,
            Fault::Delay(_) | Fault::Body(_) | Fault::Pause(_) => return None,
        };
        Some(InjectedFault::new(self.i.rule.clone(), kind))
    }

    /// The error of a connection this injection broke: a `drop: reset`, or a body cut
    /// short by a `body` fault ([`InjectedFault::is_reset`]).
    pub fn reset_error(&self) -> InjectedFault {
        InjectedFault::new(self.i.rule.clone(), FaultKind::Reset)
    }

    /// The error of a call this injection made time out: a hang or a delay that outlasted
    /// the caller's timeout ([`InjectedFault::is_timeout`]).
    pub fn timeout_error(&self) -> InjectedFault {
        InjectedFault::new(self.i.rule.clone(), FaultKind::Timeout)
    }

    /// Waits as the fault asks: a delay for its drawn duration, a hang or pause until the
    /// kill switch, a release, or the `limits.max_hang` ceiling. Other faults return at once.
    ///
    /// Every wait ends early with [`WaitOutcome::Killed`] when the kill switch is flipped.
    /// Honours `tokio::time::pause`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chaos_core::{Chaos, Decision, Point, RequestView, WaitOutcome};
    /// use chaos_core::rules::{Delay, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("slow", "server", Fault::Delay(Delay::Fixed(Duration::from_secs(2))))).unwrap();
    /// let Decision::Inject(i) = chaos.decide(&RequestView::new(Point::Server, "")) else { unreachable!() };
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(i.wait().await, WaitOutcome::Elapsed);
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    pub async fn wait(&self) -> WaitOutcome {
        let killed = self.i.shared.killed();
        tokio::pin!(killed);
        let limit = match &*self.i.fault {
            // A zero delay does not wait for the timer's next tick.
            Fault::Delay(_) if self.i.delay.is_none_or(|d| d.is_zero()) => {
                return WaitOutcome::Elapsed;
            }
            Fault::Delay(_) => self.i.delay.unwrap_or_default(),
            Fault::Drop(DropKind::Hang) | Fault::Pause(_) => self.i.max_hang,
            _ => return WaitOutcome::Elapsed,
        };
        let sleep = tokio::time::sleep(limit);
        tokio::pin!(sleep);
        match &*self.i.fault {
            Fault::Pause(gate) => tokio::select! {
                biased;
                () = &mut killed => WaitOutcome::Killed,
                () = gate.hold() => WaitOutcome::Released,
                () = &mut sleep => WaitOutcome::Elapsed,
            },
            _ => tokio::select! {
                biased;
                () = &mut killed => WaitOutcome::Killed,
                () = &mut sleep => WaitOutcome::Elapsed,
            },
        }
    }

    /// Waits as the fault asks (see [`wait`](Self::wait)), then says whether the work may
    /// go ahead: `Ok` after a delay or a pause, or when the kill switch ended the wait;
    /// `Err` ([`InjectedFault::is_timeout`]) when a `drop: hang` reached its
    /// `limits.max_hang` ceiling. Other faults return `Ok` at once. Adapters that hold the
    /// work back for a wait use this and map the error to their own timeout.
    ///
    /// # Errors
    ///
    /// A hang that reached its ceiling.
    pub async fn proceed(&self) -> Result<(), InjectedFault> {
        let outcome = self.wait().await;
        if matches!(&*self.i.fault, Fault::Drop(DropKind::Hang)) && outcome != WaitOutcome::Killed {
            return Err(self.timeout_error());
        }
        Ok(())
    }

    /// Applies the fault to `work`, for points that have no protocol of their own:
    ///
    /// | fault | result |
    /// |---|---|
    /// | `delay`, pause | waits, then runs `work` |
    /// | `error: KIND` | `Err`, `work` never runs |
    /// | `abort` | `Err` carrying the status, `work` never runs |
    /// | `drop: reset` | `Err` ([`InjectedFault::is_reset`]) |
    /// | `drop: hang` | pending until the caller gives up; at the `max_hang` ceiling `Err` ([`InjectedFault::is_timeout`]) |
    /// | `body` | runs `work` untouched (body faults belong to HTTP adapters) |
    ///
    /// If the kill switch is flipped during a wait, `work` runs as if nothing was injected.
    ///
    /// # Errors
    ///
    /// The injected fault, as an [`InjectedFault`].
    pub async fn run<F: Future>(self, work: F) -> Result<F::Output, InjectedFault> {
        let err = |kind| Err(InjectedFault::new(self.i.rule.clone(), kind));
        match &*self.i.fault {
            Fault::Delay(_) | Fault::Pause(_) | Fault::Drop(DropKind::Hang) => {
                self.proceed().await?;
                Ok(work.await)
            }
            Fault::Drop(DropKind::Reset) => err(FaultKind::Reset),
            Fault::Error(k) => err(FaultKind::Error(*k)),
            Fault::Abort(a) => err(FaultKind::Abort(a.kind)),
            Fault::Body(_) => Ok(work.await),
        }
    }
}

impl Chaos {
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
    pub async fn inject<F: Future>(
        &self,
        point: &str,
        target: &str,
        work: F,
    ) -> Result<F::Output, InjectedFault> {
        let decision = if self.is_armed() {
            ChaosContext::with_current(|ctx| {
                self.decide(&RequestView::new(Point::from_name(point), target).context(ctx))
            })
        } else {
            Decision::Pass
        };
        match decision {
            Decision::Pass => Ok(work.await),
            Decision::Inject(i) => i.run(work).await,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Error(ErrorKind),
    Abort(AbortKind),
    Reset,
    Timeout,
}

/// The error of an injected fault at a generic injection point.
///
/// Opaque, with predicates; find it inside another error's chain with
/// [`InjectedFault::find`].
#[derive(Clone)]
pub struct InjectedFault {
    inner: Box<(Arc<str>, FaultKind)>,
}

impl InjectedFault {
    fn new(rule: Arc<str>, kind: FaultKind) -> InjectedFault {
        InjectedFault {
            inner: Box::new((rule, kind)),
        }
    }

    /// The rule that injected it (`x-chaos` for a directive).
    pub fn rule_id(&self) -> &str {
        &self.inner.0
    }

    /// `error: unavailable`.
    pub fn is_unavailable(&self) -> bool {
        self.inner.1 == FaultKind::Error(ErrorKind::Unavailable)
    }

    /// `error: timeout`, or a `drop: hang` that reached its ceiling.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.1,
            FaultKind::Error(ErrorKind::Timeout) | FaultKind::Timeout
        )
    }

    /// `drop: reset`.
    pub fn is_reset(&self) -> bool {
        self.inner.1 == FaultKind::Reset
    }

    /// The SQLSTATE of an `error: sqlstate:CODE`.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.inner.1 {
            FaultKind::Error(k) => k.sqlstate(),
            _ => None,
        }
    }

    /// The status of an `abort`.
    pub fn abort(&self) -> Option<AbortKind> {
        match self.inner.1 {
            FaultKind::Abort(a) => Some(a),
            _ => None,
        }
    }

    /// The error kind of an `error:` fault.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self.inner.1 {
            FaultKind::Error(k) => Some(k),
            _ => None,
        }
    }

    /// Finds an injected fault in an error or its `source()` chain.
    ///
    /// ```
    /// use chaos_core::{Chaos, InjectedFault};
    /// use chaos_core::rules::{ErrorKind, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("down", "cache", Fault::Error(ErrorKind::Unavailable))).unwrap();
    /// let err: Box<dyn std::error::Error> = chaos.inject("cache", "", async {}).await.unwrap_err().into();
    /// assert!(InjectedFault::find(&*err).is_some_and(InjectedFault::is_unavailable));
    /// # }
    /// ```
    ///
    /// An `std::io::Error` carrying a fault as its payload (`io::Error::new(kind, fault)`,
    /// as the sqlx and connector adapters report broken connections) is looked into:
    /// its own `source()` skips the payload.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a InjectedFault> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(f) = e.downcast_ref::<InjectedFault>() {
                return Some(f);
            }
            if let Some(payload) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                && let Some(f) = InjectedFault::find(payload)
            {
                return Some(f);
            }
            cur = e.source();
        }
        None
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.1 {
            FaultKind::Error(k) => k.to_string(),
            FaultKind::Abort(a) => format!("abort {a}"),
            FaultKind::Reset => "connection reset".to_owned(),
            FaultKind::Timeout => "timed out".to_owned(),
        };
        write!(f, "injected fault: {what} (rule `{}`)", self.inner.0)
    }
}

impl fmt::Debug for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedFault")
            .field("rule", &self.inner.0)
            .field("kind", &self.inner.1)
            .finish()
    }
}

impl std::error::Error for InjectedFault {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_pointer_sized() {
        assert_eq!(
            std::mem::size_of::<InjectedFault>(),
            std::mem::size_of::<usize>()
        );
    }
}
