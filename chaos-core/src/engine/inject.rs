//! The generic injection point: any async work, decided for with the current task's chaos
//! context and observed like an adapter's.

use std::future::Future;

use super::Chaos;
use crate::context::ChaosContext;
use crate::inject::{Decision, InjectedFault};
use crate::request::{Point, RequestView};

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
