//! Helpers for integration tests (feature `test-util`).
//!
//! Tests that prove a fallback works want the smallest blast radius: a rule that exists
//! only while the test runs, a scenario tag of its own so tests can run in parallel against
//! one server, and a journal to assert what was injected.
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
pub use crate::journal::JournalEntry;
pub use crate::pause::PauseGate;
use crate::rules::{DropKind, Fault, Match, Rule, RulesError};

/// A rule installed for as long as the guard lives.
#[derive(Debug)]
#[must_use = "the rule is removed when the guard is dropped"]
pub struct RuleGuard {
    chaos: Chaos,
    id: String,
}

impl RuleGuard {
    /// The rule's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for RuleGuard {
    fn drop(&mut self) {
        let _ = self.chaos.remove_rule(&self.id);
        self.chaos.set_pause_gate(&self.id, None);
    }
}

impl Chaos {
    /// Adds a rule for as long as the returned guard lives.
    ///
    /// # Errors
    ///
    /// The rule does not validate or its id is taken.
    pub fn install(&self, rule: Rule) -> Result<RuleGuard, RulesError> {
        let id = rule.id.clone();
        self.add_rule(rule)?;
        Ok(RuleGuard {
            chaos: self.clone(),
            id,
        })
    }

    /// Every injection recorded so far (the last 100 000), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal_ref().entries(None)
    }

    /// The injections recorded in one scope (scenario tag).
    pub fn journal_for(&self, scope: &str) -> Vec<JournalEntry> {
        self.journal_ref().entries(Some(scope))
    }

    /// Forgets the journal.
    pub fn clear_journal(&self) {
        self.journal_ref().clear();
    }

    /// Installs a pause point: requests at `point` (and `target`, if given) that match `m`
    /// wait until the returned gate is released (or the kill switch, or `limits.max_hang`),
    /// then go on.
    ///
    /// It is a rule `drop: hang` (its id is `id`, and it shows as such in the snapshot and
    /// the journal) whose hang ends, and lets the work go on, when the gate opens. The
    /// guard removes both.
    ///
    /// # Errors
    ///
    /// The rule does not validate or its id is taken.
    pub fn pause_point(
        &self,
        id: &str,
        point: &str,
        target: Option<&str>,
        m: Match,
    ) -> Result<(RuleGuard, PauseGate), RulesError> {
        let gate = PauseGate::new(id);
        let mut rule = Rule::new(id, point, Fault::Drop(DropKind::Hang)).with_match(m);
        rule.target = target.map(str::to_owned);
        rule.description = Some(format!("pause point `{id}` (test-util)"));
        // The gate first, so no request meets the rule without it; put back what was
        // there if the rule is refused (its id may be another pause point's).
        let before = self.pause_gate(id);
        self.set_pause_gate(id, Some(gate.clone()));
        match self.install(rule) {
            Ok(guard) => Ok((guard, gate)),
            Err(e) => {
                self.set_pause_gate(id, before);
                Err(e)
            }
        }
    }
}

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
}
