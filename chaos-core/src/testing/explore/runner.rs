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
    ) -> impl Future<Output = (Plan, PlanResult, Vec<HopId>)> + Send + 'static {
        let (chaos, body, limit) = (self.chaos.clone(), self.body.clone(), self.time_limit);
        async move { one_plan(&chaos, &body, plan, limit).await }
    }
}

/// One plan: its rules in for a fresh scenario, the body run, and what happened.
async fn one_plan(
    chaos: &Chaos,
    body: &Body,
    plan: Plan,
    limit: Duration,
) -> (Plan, PlanResult, Vec<HopId>) {
    let scenario = Scenario::fresh();
    let name = scenario.name().to_owned();
    let recording = chaos.record_hops(&name);
    let rules = plan
        .rules()
        .into_iter()
        .map(|(step, rule)| (step, scenario.scope(rule)))
        .collect::<Vec<_>>();
    let guards = rules
        .iter()
        .map(|(_, rule)| chaos.install(rule.clone()))
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
            let injected = chaos
                .journal_for(&name)
                .into_iter()
                .filter(|e| !e.shadow)
                .map(|e| e.rule)
                .collect::<std::collections::HashSet<_>>();
            let missing = rules
                .iter()
                .filter(|(_, rule)| !injected.contains(&rule.id))
                .map(|(step, _)| step.to_string())
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
