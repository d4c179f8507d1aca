//! Helpers for integration tests (feature `test-util`).
//!
//! Tests that prove a fallback works want the smallest blast radius: a rule that exists
//! only while the test runs, a scenario tag of its own so tests can run in parallel against
//! one server, and a journal to assert what was injected. [`Experiment`] states one
//! experiment as a test; [`Explore`] finds the fallbacks nobody wrote a test for, by
//! failing every hop a passing test reaches in turn, against a reviewed map.
//!
//! ```
//! use chaos_core::Chaos;
//! use chaos_core::rules::{ErrorKind, Fault, Match, Rule};
//! use chaos_core::testing::Scenario;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let chaos = Chaos::new();
//! let scenario = Scenario::fresh();
//! let _rule = chaos
//!     .install(
//!         Rule::new("cache-down", "cache.get", Fault::Error(ErrorKind::Unavailable))
//!             .with_match(scenario.matcher()),
//!     )
//!     .unwrap();
//!
//! // Only requests of this test's scenario see the fault.
//! let r = scenario.context().scope(chaos.inject("cache.get", "users", async { 1 })).await;
//! assert!(r.is_err());
//! assert_eq!(chaos.inject("cache.get", "users", async { 1 }).await.unwrap(), 1);
//! assert_eq!(chaos.journal_for(scenario.name()).len(), 1);
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::ChaosContext;
use crate::engine::Chaos;
mod experiment;
mod explore;

pub use self::experiment::{Experiment, Figures, Outcome, Verdict};
pub use self::explore::{
    BodyResult, Exploration, Explore, ExploreError, FaultSet, HopId, MapError, PLAN_VAR, PlanId,
    PlanResult, ResilienceMap, Tried, UPDATE_VAR,
};
pub use crate::engine::HopRecording;
pub use crate::engine::RuleGuard;
pub use crate::hops::Hop;
pub use crate::journal::JournalEntry;
pub use crate::pause::PauseGate;
use crate::rules::{Match, Rule, RulesError};

/// A scenario tag of its own for one test, so tests can run in parallel against one server
/// without seeing each other's faults, sequences or journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    name: String,
}

impl Scenario {
    /// A fresh, process-unique scenario name: `test-<pid>-<n>`.
    pub fn fresh() -> Scenario {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scenario {
            name: format!("test-{}-{n}", std::process::id()),
        }
    }

    /// The scenario name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `x-chaos` header value that tags a request with it.
    pub fn header_value(&self) -> String {
        format!("scenario={}", self.name)
    }

    /// A context carrying it, marked as test traffic.
    pub fn context(&self) -> ChaosContext {
        ChaosContext::builder()
            .scenario(&self.name)
            .test_traffic(true)
            .build()
    }

    /// A match on it, to scope a rule to this test.
    pub fn matcher(&self) -> Match {
        Match::default().scenario(&self.name)
    }

    /// `rule` scoped to this test: it matches only this scenario's requests (besides its
    /// own conditions), and its id is `ID.SCENARIO`, so tests that install the same rule
    /// in parallel on one engine never share one (a fixed id is refused the second time:
    /// "duplicate rule id").
    pub fn scope(&self, mut rule: Rule) -> Rule {
        rule.matcher.scenario = Some(self.name.clone());
        rule.id = format!("{}.{}", rule.id, self.name);
        rule
    }

    /// Installs `rule` [scoped](Self::scope) to this test, for as long as the guard lives
    /// (see [`Chaos::install`]).
    ///
    /// # Errors
    ///
    /// The rule does not validate.
    pub fn install(&self, chaos: &Chaos, rule: Rule) -> Result<RuleGuard, RulesError> {
        chaos.install(self.scope(rule))
    }
}
