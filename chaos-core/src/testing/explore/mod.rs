//! Failure exploration: a passing test run again once per fault at every hop it reached,
//! each run under a scenario of its own, in parallel, checked against a reviewed map.
//!
//! The parts: [`plan`] names hops and plans and makes a plan's rules; [`runner`] runs the
//! test's body once, under a recording of its hops; [`map`] holds what the plans found,
//! prints it and checks it against a map file.

mod map;
mod plan;
mod runner;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use self::map::{Exploration, MapError, PlanResult, ResilienceMap, Tried, UPDATE_VAR};
use self::plan::{FaultAt, Plan, parse_fault};
pub use self::plan::{FaultSet, HopId, PlanId};
use self::runner::{Body, Run};
use crate::engine::Chaos;
use crate::rules::Fault;

/// The environment variable that runs one plan alone: its [`PlanId`].
pub const PLAN_VAR: &str = "CHAOS_EXPLORE_PLAN";

/// What a test body returns: `()`, or a `Result` whose error says what the caller got
/// wrong. A body may also panic (an `assert!`); either way the plan counts as failed, with
/// the message kept.
pub trait BodyResult {
    /// `Err` with the message when the test failed.
    fn into_result(self) -> Result<(), String>;
}

impl BodyResult for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> BodyResult for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Why an exploration could not say anything: nothing here is ever a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExploreError {
    /// The body failed with nothing injected: there is no passing test to explore.
    FailsWithoutFaults(String),
    /// The body reached no chaos point of its scenario.
    NoHop,
    /// The engine's kill switch is on: nothing can be injected, so nothing explored.
    Killed,
    /// A fault given to [`Explore::faults`] is not one the rules schema knows.
    UnknownFault(String),
    /// [`PLAN_VAR`] names a plan that cannot be read.
    BadPlan {
        /// The plan as given.
        plan: String,
        /// What is wrong with it.
        why: String,
    },
}

impl fmt::Display for ExploreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExploreError::FailsWithoutFaults(why) => {
                write!(f, "the test fails without faults: {why}")
            }
            ExploreError::NoHop => f.write_str(
                "no hop reached: is the request tagged with the scenario? (send \
                 `scenario.header_value()` as `x-chaos`, or run the call in \
                 `scenario.context().scope(..)`)",
            ),
            ExploreError::Killed => f.write_str(
                "the engine's kill switch is on (CHAOS_DISABLED, the rules' kill_switch or \
                 Chaos::kill): nothing can be injected, so nothing can be explored",
            ),
            ExploreError::UnknownFault(why) => write!(f, "unknown fault: {why}"),
            ExploreError::BadPlan { plan, why } => {
                write!(f, "{PLAN_VAR}=`{plan}` names no plan: {why}")
            }
        }
    }
}

impl std::error::Error for ExploreError {}

/// Explores a test: runs it once with nothing injected to find the hops its request
/// reaches (from the engine's own records: nothing to annotate), then once per fault at
/// each hop, injected at exactly that call, each run under a scenario of its own so runs
/// go in parallel without seeing each other's faults.
///
/// A fault that makes the request reach hops the passing run did not (a fallback that
/// calls a cache) adds plans for those hops, with the revealing fault still in place.
/// A plan whose fault was never injected is "not reached", never a pass.
///
/// ```
/// use chaos_core::Chaos;
/// use chaos_core::testing::{Explore, Tried};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let chaos = Chaos::new();
/// let found = Explore::new(&chaos)
///     .run({
///         let chaos = chaos.clone();
///         move |scenario| {
///             let chaos = chaos.clone();
///             async move {
///                 // The code under test: a price with a fallback, a stock check without.
///                 scenario.context().scope(async {
///                     let price = chaos.inject("cache", "prices", async { 42 }).await.unwrap_or(40);
///                     let stock = chaos.inject("stock", "warehouse", async { 3 }).await;
///                     assert!(price > 0);
///                     stock.map(|_| ()).map_err(|e| format!("no stock answer: {e}"))
///                 })
///                 .await
///             }
///         }
///     })
///     .await
///     .unwrap();
/// assert_eq!(found.hops().len(), 2);
/// assert_eq!(found.result("cache prices × error unavailable").unwrap().tried, Tried::Tolerated);
/// assert!(matches!(found.result("stock warehouse × error unavailable").unwrap().tried, Tried::Fails(_)));
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "an exploration does nothing until it is run"]
pub struct Explore {
    chaos: Chaos,
    faults: FaultSet,
    entry: bool,
    depth: u8,
    max_plans: usize,
    concurrency: usize,
    time_limit: Duration,
    only: Option<String>,
}

impl Explore {
    /// An exploration on `chaos`, the engine the app under test uses. By default: the
    /// [`FaultSet`] defaults, single faults and what they reveal, at most 200 plans, 8 at
    /// a time, 10 s each, and the entry hop left out.
    pub fn new(chaos: &Chaos) -> Explore {
        Explore {
            chaos: chaos.clone(),
            faults: FaultSet::default(),
            entry: false,
            depth: 1,
            max_plans: 200,
            concurrency: 8,
            time_limit: Duration::from_secs(10),
            only: None,
        }
    }

    /// The faults tried at `point` (`server`, `client`, `sql` or a `Chaos::inject` name),
    /// written as a map writes them: `abort 503`, `drop reset`, `drop hang`,
    /// `error sqlstate:40001`, `error unavailable`, `error timeout`, `delay 2s`.
    ///
    /// # Errors
    ///
    /// A fault the rules schema does not know: refused here, before anything runs.
    pub fn faults<'a>(
        mut self,
        point: &str,
        faults: impl IntoIterator<Item = &'a str>,
    ) -> Result<Explore, ExploreError> {
        let faults = faults
            .into_iter()
            .map(parse_fault)
            .collect::<Result<Vec<Fault>, _>>()
            .map_err(ExploreError::UnknownFault)?;
        self.faults.set(point, faults);
        Ok(self)
    }

    /// Also fails the entry hop: the server the test itself calls (the `server` calls of
    /// the target the first hop reached). Left out by default, since failing it fails the
    /// test by definition.
    pub fn include_entry(mut self) -> Explore {
        self.entry = true;
        self
    }

    /// `2`: also every pair of single faults at two different hops. `1` (the default):
    /// single faults, and what they reveal.
    pub fn depth(mut self, depth: u8) -> Explore {
        self.depth = depth.clamp(1, 2);
        self
    }

    /// The most plans run; plans past it are counted and named in the result, never
    /// dropped silently, and a map check fails on them.
    pub fn max_plans(mut self, n: usize) -> Explore {
        self.max_plans = n;
        self
    }

    /// How many plans run at once (at least 1). `1` runs them one at a time: what an app
    /// needs whose state outlives a request and is shared by all (a circuit breaker, a
    /// cache), unless the body builds its own app per plan.
    pub fn concurrency(mut self, n: usize) -> Explore {
        self.concurrency = n.max(1);
        self
    }

    /// The longest one run of the body may take; a plan that reaches it is "hung": the
    /// faulted hop has no timeout.
    pub fn time_limit(mut self, limit: Duration) -> Explore {
        self.time_limit = limit;
        self
    }

    /// Runs the discovery and then only the plan named `id` (as the table and the map
    /// name it): what setting [`PLAN_VAR`] does, to re-run one finding alone.
    pub fn only(mut self, id: impl Into<String>) -> Explore {
        self.only = Some(id.into());
        self
    }

    /// Runs the exploration. `body` is the test: it sends its request(s) tagged with the
    /// scenario it is given, and asserts what the caller must get. It runs on the test's
    /// runtime, once per plan, in tasks of their own.
    ///
    /// With [`PLAN_VAR`] set, runs the discovery and that one plan only.
    ///
    /// # Errors
    ///
    /// The body fails with nothing injected, or reaches no hop; [`PLAN_VAR`] names no plan;
    /// the engine's kill switch is on.
    pub async fn run<F, Fut>(self, body: F) -> Result<Exploration, ExploreError>
    where
        F: Fn(super::Scenario) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: BodyResult,
    {
        let body: Body = Arc::new(move |s| {
            let fut = body(s);
            Box::pin(async move { fut.await.into_result() })
        });
        if self.chaos.is_killed() {
            return Err(ExploreError::Killed);
        }
        let started = tokio::time::Instant::now();
        let run = Run {
            chaos: &self.chaos,
            body: &body,
            time_limit: self.time_limit,
        };

        // Discovery: twice, with nothing injected. A hop reached in one run and not the
        // other is unstable: reported, never planned.
        let first = run.discover().await?;
        let second = run.discover().await?;
        let ids = |hops: &[crate::hops::Hop]| hops.iter().map(HopId::of).collect::<Vec<_>>();
        let (first, second) = (ids(&first), ids(&second));
        let in_second = second.iter().collect::<HashSet<_>>();
        let in_first = first.iter().collect::<HashSet<_>>();
        let stable = first
            .iter()
            .filter(|h| in_second.contains(h))
            .cloned()
            .collect::<Vec<_>>();
        let mut unstable = first
            .iter()
            .filter(|h| !in_second.contains(h))
            .chain(second.iter().filter(|h| !in_first.contains(h)))
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>();
        let entry = entry_hops(&stable);

        let only = self
            .only
            .clone()
            .or_else(|| std::env::var(PLAN_VAR).ok())
            .filter(|v| !v.trim().is_empty());
        let mut queue = match &only {
            Some(id) => vec![Plan::parse(id)?],
            None => self.plans(&stable, &entry),
        };
        let mut over_budget = Vec::new();
        if only.is_none() && queue.len() > self.max_plans {
            over_budget.extend(queue.drain(self.max_plans..).map(|p| p.id()));
        }
        let known = stable.iter().cloned().collect::<HashSet<_>>();
        let mut seen = queue.iter().map(Plan::id).collect::<HashSet<_>>();
        let mut planned = queue.len();
        // Each plan with a second run still to come: `true`.
        let mut queue = queue
            .into_iter()
            .map(|p| (p, false))
            .collect::<VecDeque<_>>();
        let mut revealed = HashMap::<PlanId, Vec<HopId>>::new();
        let mut results = Vec::new();

        // A pool of `concurrency` runs: as each ends, what it revealed joins the queue,
        // so a plan that hangs holds up one slot, not the plans after it. A plan that
        // reached hops the run without faults did not is run once more first: only the
        // hops both runs reached are planned (a retry the fault caused, not a timeout a
        // busy machine did); the others are reported as unstable.
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < self.concurrency
                && let Some((plan, again)) = queue.pop_front()
            {
                let run = run.plan(plan);
                running.spawn(async move { (again, run.await) });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (again, (plan, result, reached)) = done.expect("a plan's runner does not panic");
            let new = reached
                .into_iter()
                .filter(|h| !known.contains(h) && !plan.hops().any(|p| p == h))
                .collect::<Vec<_>>();
            if !again {
                if only.is_none() && result.tried.was_injected() && !new.is_empty() {
                    revealed.insert(plan.id(), new);
                    queue.push_front((plan.clone(), true));
                }
                results.push((plan.rank(&stable, &self.faults), result));
                continue;
            }
            let first = revealed.remove(&plan.id()).unwrap_or_default();
            for hop in &first {
                if !new.contains(hop) {
                    unstable.push(format!("{hop} (after {})", plan.id()));
                }
            }
            for hop in first.iter().filter(|h| new.contains(h)) {
                for fault in self.faults.at(&hop.point) {
                    let mut child = plan.clone();
                    child.steps.push(FaultAt {
                        hop: hop.clone(),
                        fault,
                    });
                    if !seen.insert(child.id()) {
                        continue;
                    }
                    if planned >= self.max_plans {
                        over_budget.push(child.id());
                    } else {
                        planned += 1;
                        queue.push_back((child, false));
                    }
                }
            }
        }
        // Discovery order of the hops, then the fault: the order a reader follows.
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let results = results.into_iter().map(|(_, r)| r).collect();

        Ok(Exploration::new(
            stable,
            unstable,
            results,
            over_budget,
            map::Settings {
                max_plans: self.max_plans,
                concurrency: self.concurrency,
                only: only.is_some(),
            },
            started.elapsed(),
        ))
    }

    /// The plans of the stable hops: each fault of its point, then (depth 2) each pair.
    fn plans(&self, stable: &[HopId], entry: &[HopId]) -> Vec<Plan> {
        let singles = stable
            .iter()
            .filter(|h| self.entry || !entry.contains(h))
            .flat_map(|hop| {
                self.faults.at(&hop.point).into_iter().map(|fault| FaultAt {
                    hop: hop.clone(),
                    fault,
                })
            })
            .collect::<Vec<_>>();
        let mut plans = singles
            .iter()
            .map(|s| Plan {
                steps: vec![s.clone()],
            })
            .collect::<Vec<_>>();
        if self.depth >= 2 {
            for (i, a) in singles.iter().enumerate() {
                for b in singles[i + 1..].iter().filter(|b| b.hop != a.hop) {
                    plans.push(Plan {
                        steps: vec![a.clone(), b.clone()],
                    });
                }
            }
        }
        plans
    }
}

/// The entry hops: when the first hop is a `server` call, every `server` call of its
/// target (the server the test itself calls).
fn entry_hops(stable: &[HopId]) -> Vec<HopId> {
    match stable.first() {
        Some(first) if first.point == "server" => stable
            .iter()
            .filter(|h| h.point == "server" && h.target == first.target)
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}
