//! Outbound calls: the one sequence every client adapter runs (the call's context, else
//! the task's, else OpenTelemetry baggage; forwarded; decided; observed), and the generic
//! injection point built on it.

use std::future::Future;

use super::Chaos;
use crate::context::ChaosContext;
use crate::decision::Observation;
use crate::inject::{Decision, InjectedFault};
use crate::request::{OutboundCall, Point, RequestView};

impl Chaos {
    /// Runs the outbound sequence for `call`: its chaos context is `own` (a context the
    /// caller attached to the call), else the current task's, else (feature `otel`) the
    /// current OpenTelemetry context's baggage; it is forwarded onto the call
    /// ([`OutboundCall::forward`]) whether or not the engine is armed, so propagation
    /// never depends on rules. While armed, the call is decided for and observed: finish
    /// the [`Observation`] with the call's outcome.
    ///
    /// The tower client layer, the reqwest middleware, the sqlx adapter and
    /// [`Chaos::inject`] all run this; an adapter of your own can too (see
    /// [`OutboundCall`]).
    #[inline]
    pub fn outbound(
        &self,
        own: Option<&ChaosContext>,
        call: &mut impl OutboundCall,
    ) -> (Decision, Option<Observation>) {
        ChaosContext::with_current(|current| {
            let ctx = own.or(current);
            #[cfg(feature = "otel")]
            let from_otel = match ctx {
                None => self.context_from_current_otel(),
                Some(_) => None,
            };
            #[cfg(feature = "otel")]
            let ctx = ctx.or(from_otel.as_ref());
            if let Some(c) = ctx {
                call.forward(c);
            }
            let obs = match call.steady_state() {
                Some(steady) => self.observe_sampled(steady),
                None => self.observe(),
            };
            let Some(mut obs) = obs else {
                return (Decision::Pass, None);
            };
            let decision = self.decide_observed(&call.view(ctx), Some(&mut obs));
            (decision, Some(obs))
        })
    }
}

/// A call at a point named by the application, to `target`.
struct Named<'a> {
    point: &'a str,
    target: &'a str,
}

impl OutboundCall for Named<'_> {
    fn forward(&mut self, _: &ChaosContext) {}

    fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a> {
        RequestView::new(Point::from_name(self.point), self.target).context(ctx)
    }
}

impl Chaos {
    /// A generic injection point: decides for `point` and `target` with the current task's
    /// chaos context, and applies the fault around `work` (see [`Injection::run`](crate::Injection::run)).
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
        if !self.is_armed() {
            return Ok(work.await);
        }
        let (decision, obs) = self.outbound(None, &mut Named { point, target });
        let Some(obs) = obs else {
            // Disarmed meanwhile.
            return Ok(work.await);
        };
        let (out, injected) = match decision {
            Decision::Pass => (Ok(work.await), false),
            Decision::Inject(i) => (i.run(work).await, true),
        };
        let error = out.as_ref().map_or(true, failed);
        obs.finish_named(self, point, target, error, injected);
        out
    }
}
