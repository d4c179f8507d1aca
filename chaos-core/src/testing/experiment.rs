//! An experiment stated in a test: a steady state, one rule for the test's scenario, a
//! verdict.

use super::Scenario;
use crate::engine::Chaos;
use crate::rules::Rule;

/// An experiment stated in a test: a steady state first, then one rule for this test's
/// own scenario, N requests, and a verdict with the rule's cohorts. Tests run it in
/// parallel against one server: each has its scenario, and its rule matches nothing else.
///
/// ```
/// use std::time::Duration;
/// use chaos_core::Chaos;
/// use chaos_core::rules::{ErrorKind, Fault, Rule};
/// use chaos_core::testing::{Experiment, Verdict};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let chaos = Chaos::new();
/// // The code under test: a cache read with a fallback.
/// let get = |chaos: Chaos, scenario: chaos_core::testing::Scenario| async move {
///     let hit = scenario.context().scope(chaos.inject("cache.get", "users", async { 1 })).await;
///     hit.or(Ok::<_, ()>(0)).is_ok() // the fallback answers
/// };
/// let rule = Rule::new("cache-down", "cache.get", Fault::Error(ErrorKind::Unavailable));
/// let outcome = Experiment::new(&chaos, rule)
///     .tolerate(0.0, Some(Duration::from_secs(1)))
///     .run(50, |s| get(chaos.clone(), s))
///     .await;
/// assert_eq!(outcome.verdict, Verdict::Held, "{}", outcome.reason);
/// assert_eq!(outcome.cohorts.experiment.total_requests, 50);
/// # }
/// ```
#[derive(Debug)]
pub struct Experiment {
    chaos: Chaos,
    rule: Rule,
    scenario: Scenario,
    error_rate_below: f64,
    p99_below: Option<std::time::Duration>,
}

/// What an [`Experiment`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Every request stayed within tolerance while the rule was in.
    Held,
    /// The requests broke the tolerance while the rule was in: a finding.
    Refuted,
    /// The rule's guard aborted it.
    Aborted,
    /// The requests broke the tolerance before anything was injected.
    NotSteady,
}

/// The requests of one phase: how many, how many failed (the request function said
/// `false`), and their exact 99th percentile latency.
pub use crate::outcome::Figures;

/// An experiment's verdict, the figures of both phases, and the rule's cohorts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in a sentence.
    pub reason: String,
    /// The requests before the rule was in.
    pub baseline: Figures,
    /// The requests while it was in.
    pub injected: Figures,
    /// The rule's cohorts as it left.
    pub cohorts: crate::outcome::CohortsSnapshot,
}

impl Experiment {
    /// `rule`, scoped to a fresh scenario (and named after it, so parallel tests never
    /// share a rule). By default any failed request breaks the tolerance.
    pub fn new(chaos: &Chaos, rule: Rule) -> Experiment {
        let scenario = Scenario::fresh();
        let rule = scenario.scope(rule);
        Experiment {
            chaos: chaos.clone(),
            rule,
            scenario,
            error_rate_below: 0.0,
            p99_below: None,
        }
    }

    /// The tolerance: at most this error rate (0.0 to 1.0), and at most this p99.
    #[must_use]
    pub fn tolerate(mut self, error_rate: f64, p99: Option<std::time::Duration>) -> Experiment {
        self.error_rate_below = error_rate;
        self.p99_below = p99;
        self
    }

    /// This experiment's scenario (its requests must carry it).
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    fn judge(&self, f: &Figures) -> Option<String> {
        if f.error_rate() > self.error_rate_below {
            return Some(format!(
                "{} of {} requests failed (tolerance {:.2}%)",
                f.errors,
                f.requests,
                self.error_rate_below * 100.0
            ));
        }
        if let (Some(max), Some(p99)) = (self.p99_below, f.p99)
            && p99 > max
        {
            return Some(format!("p99 {p99:?} above {max:?}"));
        }
        None
    }

    /// Sends `n` requests for the steady state, installs the rule, sends `n` more, removes
    /// the rule, and judges. `request` sends one request tagged with the scenario it is
    /// given and says whether its caller got a good answer.
    ///
    /// # Panics
    ///
    /// If the rule cannot be installed (it does not validate).
    pub async fn run<F, Fut>(self, n: usize, mut request: F) -> Outcome
    where
        F: FnMut(Scenario) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let phase = async |this: &Experiment, request: &mut F| {
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = tokio::time::Instant::now();
                let ok = request(this.scenario.clone()).await;
                samples.push((start.elapsed(), ok));
            }
            Figures::from_samples(samples)
        };
        let baseline = phase(&self, &mut request).await;
        let empty = || crate::outcome::CohortsSnapshot::empty(crate::outcome::DEFAULT_SPAN);
        if let Some(why) = self.judge(&baseline) {
            return Outcome {
                verdict: Verdict::NotSteady,
                reason: format!("not a steady state: {why}"),
                baseline,
                injected: Figures::default(),
                cohorts: empty(),
            };
        }
        let guard = self
            .chaos
            .install(self.rule.clone())
            .expect("the experiment's rule validates");
        let injected = phase(&self, &mut request).await;
        let snap = self
            .chaos
            .snapshot()
            .rules
            .into_iter()
            .find(|r| r.rule.id == self.rule.id);
        drop(guard);
        let (aborted, cohorts, why_aborted) = match snap {
            Some(r) => (
                r.state == crate::engine::RuleStatus::Aborted,
                r.cohorts,
                r.abort_reason,
            ),
            None => (false, empty(), None),
        };
        let (verdict, reason) = if aborted {
            (
                Verdict::Aborted,
                why_aborted.unwrap_or_else(|| "aborted".into()),
            )
        } else if let Some(why) = self.judge(&injected) {
            (Verdict::Refuted, format!("while the rule was in, {why}"))
        } else {
            (
                Verdict::Held,
                "every request stayed within tolerance while the rule was in".into(),
            )
        };
        Outcome {
            verdict,
            reason,
            baseline,
            injected,
            cohorts,
        }
    }
}
