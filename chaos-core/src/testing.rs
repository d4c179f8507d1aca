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

use crate::engine::Shared;
use crate::pause::PauseGate;
use crate::rules::{Fault, Match, Rule, RulesError};
use crate::{Chaos, ChaosContext, Injection};

const JOURNAL_CAP: usize = 100_000;

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
    }
}

/// One injection, as the journal recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The rule id (`x-chaos` for a directive).
    pub rule: String,
    /// The point.
    pub point: String,
    /// The target.
    pub target: String,
    /// The fault, e.g. `abort 503`.
    pub fault: String,
    /// The scope (scenario tag), if any.
    pub scope: Option<String>,
    /// Whether it was only a shadow decision.
    pub shadow: bool,
}

pub(crate) fn journal_push(shared: &Shared, inj: &Injection, shadow: bool) {
    let mut j = shared.journal.lock().unwrap_or_else(|p| p.into_inner());
    if j.len() >= JOURNAL_CAP {
        j.pop_front();
    }
    j.push_back(JournalEntry {
        rule: inj.i.rule.to_string(),
        point: inj.i.point.to_string(),
        target: inj.i.target.to_string(),
        fault: inj.i.fault.to_string(),
        scope: inj.i.scope.as_deref().map(str::to_owned),
        shadow,
    });
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
        let j = self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        j.iter().cloned().collect()
    }

    /// The injections recorded in one scope (scenario tag).
    pub fn journal_for(&self, scope: &str) -> Vec<JournalEntry> {
        let j = self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        j.iter()
            .filter(|e| e.scope.as_deref() == Some(scope))
            .cloned()
            .collect()
    }

    /// Forgets the journal.
    pub fn clear_journal(&self) {
        self.shared
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Installs a pause point: requests at `point` (and `target`, if given) that match `m`
    /// wait until the returned gate is released (or the kill switch, or `limits.max_hang`).
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
        let mut rule = Rule::new(id, point, Fault::Pause(gate.clone())).with_match(m);
        rule.target = target.map(str::to_owned);
        Ok((self.install(rule)?, gate))
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
