//! The test hooks (feature `test-util`): rules installed for a test's lifetime, the
//! journal, pause points. See [`testing`](crate::testing).

use std::sync::atomic::Ordering;

use super::Chaos;
use crate::hops::{Calls, Recorders};
use crate::journal::{Journal, JournalEntry};
use crate::pause::PauseGate;
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

/// The hops one scenario's requests reach while this lives; see [`Chaos::record_hops`].
#[derive(Debug)]
#[must_use = "the recording stops when this is dropped"]
pub struct HopRecording {
    chaos: Chaos,
    calls: Calls,
}

impl HopRecording {
    /// The hops reached so far, in the order reached.
    pub fn hops(&self) -> Vec<crate::hops::Hop> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HopRecording {
    fn drop(&mut self) {
        self.chaos.hop_recorders().remove(&self.calls);
        self.chaos.rearm();
    }
}

impl Chaos {
    /// Adds a rule for as long as the returned guard lives.
    ///
    /// The guard is the rule's lifetime: unless the rule has a `ttl` or `expires_at` of
    /// its own, it does not take `defaults.ttl` (one hour) and never expires while the
    /// guard lives, however far a paused test's clock moves.
    ///
    /// # Errors
    ///
    /// The rule does not validate or its id is taken.
    pub fn install(&self, mut rule: Rule) -> Result<RuleGuard, RulesError> {
        rule.held = true;
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

    /// Takes the journal's entries, oldest first, leaving it empty: what a long run reads
    /// as it goes, losing nothing between a read and a clear.
    pub fn take_journal(&self) -> Vec<JournalEntry> {
        self.journal_ref().take()
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

    /// Records every call at a chaos point made by a request tagged with `scenario`, while
    /// the returned recording lives: its point, target, and which call of that pair it
    /// was (what was injected into them, [`journal_for`](Chaos::journal_for) says). What
    /// [`Explore`](crate::testing::Explore) discovers a test's hops with; nothing needs to
    /// be annotated.
    ///
    /// The engine is armed while a recording lives, so adapters read the scenario tag even
    /// with no rule loaded. Requests of other scenarios, and untagged ones, are not noted.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use chaos_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// let scenario = Scenario::fresh();
    /// let recording = chaos.record_hops(scenario.name());
    /// let read = || chaos.inject("cache.get", "users", async { 1 });
    /// scenario.context().scope(async { read().await.ok(); read().await.ok() }).await;
    /// read().await.unwrap(); // untagged: not noted
    /// let hops = recording.hops();
    /// assert_eq!(hops.len(), 2);
    /// assert_eq!((hops[1].point.as_str(), hops[1].target.as_str(), hops[1].call), ("cache.get", "users", 2));
    /// # }
    /// ```
    pub fn record_hops(&self, scenario: &str) -> HopRecording {
        let calls = self.hop_recorders().add(scenario);
        self.rearm();
        HopRecording {
            chaos: self.clone(),
            calls,
        }
    }
}

// ---- for the rest of the crate -----------------------------------------------------

impl Chaos {
    /// The journal of injections.
    pub(crate) fn journal_ref(&self) -> &Journal {
        &self.shared.journal
    }

    /// The hop recordings alive.
    pub(crate) fn hop_recorders(&self) -> &Recorders {
        &self.shared.hops
    }

    /// Works out again whether the engine is armed, after a hop recording came or went.
    pub(crate) fn rearm(&self) {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_flags(&self.compiled());
    }

    /// The pause gate of a rule, if it is a pause point.
    pub(crate) fn pause_gate(&self, rule: &str) -> Option<PauseGate> {
        if !self.shared.has_pauses.load(Ordering::Relaxed) {
            return None;
        }
        let p = self.shared.pauses.lock().unwrap_or_else(|p| p.into_inner());
        p.iter()
            .find(|(id, _)| &**id == rule)
            .map(|(_, g)| g.clone())
    }

    /// Makes `rule` a pause point with `gate`, or (`None`) no longer one.
    pub(crate) fn set_pause_gate(&self, rule: &str, gate: Option<PauseGate>) {
        let mut p = self.shared.pauses.lock().unwrap_or_else(|p| p.into_inner());
        p.retain(|(id, _)| &**id != rule);
        if let Some(g) = gate {
            p.push((rule.into(), g));
        }
        self.shared
            .has_pauses
            .store(!p.is_empty(), Ordering::Relaxed);
    }
}
