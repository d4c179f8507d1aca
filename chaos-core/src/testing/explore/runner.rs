//! Running the test's body once: under a fresh scenario, a recording of its hops, the
//! plan's rules (scoped to that scenario) and the time limit, in a task of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::ExploreError;
use super::map::{PlanResult, Tried};
use super::plan::{HopId, Plan};
use crate::engine::Chaos;
use crate::hops::Hop;
use crate::testing::Scenario;

/// The body, boxed once for every run.
pub(crate) type Body =
    Arc<dyn Fn(Scenario) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How one run of the body ended.
enum Ended {
    Passed,
    Failed(String),
    TimedOut,
}

pub(crate) struct Run<'a> {
    pub(crate) chaos: &'a Chaos,
    pub(crate) body: &'a Body,
    pub(crate) time_limit: Duration,
    /// Plans made so far, across waves: each plan's place.
    pub(crate) made: std::sync::atomic::AtomicUsize,
}

impl Run<'_> {
    /// Runs the body once with nothing injected: the hops it reached.
    pub(crate) async fn discover(&self) -> Result<Vec<Hop>, ExploreError> {
        let scenario = Scenario::fresh();
        let recording = self.chaos.record_hops(scenario.name());
        let ended = once(self.body, scenario, self.time_limit).await;
        let hops = recording.hops();
        match ended {
            Ended::Passed if hops.is_empty() => Err(ExploreError::NoHop),
            Ended::Passed => Ok(hops),
            Ended::Failed(why) => Err(ExploreError::FailsWithoutFaults(why)),
            Ended::TimedOut => Err(ExploreError::FailsWithoutFaults(format!(
                "it did not finish within the time limit ({:?})",
                self.time_limit
            ))),
        }
    }

    /// A task that runs `plan`: its result and the hops it reached.
    pub(crate) fn plan(
        &self,
        plan: Plan,
        order: Vec<(usize, String, u32, usize)>,
    ) -> impl Future<Output = (Plan, PlanResult, Vec<HopId>)> + Send + 'static {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (chaos, body, limit) = (self.chaos.clone(), self.body.clone(), self.time_limit);
        async move { one_plan(&chaos, &body, plan, n, order, limit).await }
    }
}

/// One plan: its rules in for a fresh scenario, the body run, and what happened.
async fn one_plan(
    chaos: &Chaos,
    body: &Body,
    plan: Plan,
    n: usize,
    order: Vec<(usize, String, u32, usize)>,
    limit: Duration,
) -> (Plan, PlanResult, Vec<HopId>) {
    let scenario = Scenario::fresh();
    let recording = chaos.record_hops(scenario.name());
    let rules = plan.rules(n);
    let ids = rules
        .iter()
        .map(|r| scenario.scope(r.clone()).id)
        .collect::<Vec<_>>();
    // A request takes the first rule that injects, so a rule for a later call of a pair
    // goes in first: it counts the earlier call (a pass for it) before the rule for that
    // call injects and ends the decision.
    let mut later_first = rules.into_iter().zip(&plan.steps).collect::<Vec<_>>();
    later_first.sort_by_key(|(_, step)| std::cmp::Reverse(step.hop.call));
    let guards = later_first
        .into_iter()
        .map(|(r, _)| scenario.install(chaos, r))
        .collect::<Result<Vec<_>, _>>();
    let started = tokio::time::Instant::now();
    let (tried, hops) = match guards {
        Err(e) => (
            Tried::NotReached(format!("its rule was refused: {e}")),
            vec![],
        ),
        Ok(guards) => {
            let ended = once(body, scenario, limit).await;
            let hops = recording.hops();
            drop(guards);
            let missing = ids
                .iter()
                .zip(&plan.steps)
                .filter(|(id, _)| !hops.iter().any(|h| h.injected.as_deref() == Some(id)))
                .map(|(_, s)| s.to_string())
                .collect::<Vec<_>>();
            let tried = if missing.is_empty() {
                match ended {
                    Ended::Passed => Tried::Tolerated,
                    Ended::Failed(why) => Tried::Fails(why),
                    Ended::TimedOut => Tried::Hangs,
                }
            } else {
                Tried::NotReached(format!(
                    "never injected: {} (the calls differed from the run without faults)",
                    missing.join(", ")
                ))
            };
            (tried, hops)
        }
    };
    let reached = hops.iter().map(HopId::of).collect();
    let result = PlanResult {
        id: plan.id(),
        hop: plan.last().hop.clone(),
        fault: plan.last().fault.to_string(),
        after: plan.steps[..plan.steps.len() - 1]
            .iter()
            .map(ToString::to_string)
            .collect(),
        tried,
        took: started.elapsed(),
        order,
    };
    (plan, result, reached)
}

/// Runs the body once for `scenario`, in a task of its own (a panic is a failure with its
/// message), within `limit`.
async fn once(body: &Body, scenario: Scenario, limit: Duration) -> Ended {
    let mut task = tokio::spawn(body(scenario));
    match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(Ok(()))) => Ended::Passed,
        Ok(Ok(Err(why))) => Ended::Failed(why),
        Ok(Err(e)) => Ended::Failed(match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .map_or_else(|| "it panicked".to_owned(), |m| format!("panicked: {m}")),
            Err(_) => "it was cancelled".to_owned(),
        }),
        Err(_) => {
            task.abort();
            Ended::TimedOut
        }
    }
}
