//! Changing the engine: rules replaced, added, removed or aborted; the kill switch.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use super::compiled::Compiled;
use super::{Chaos, Event};
use crate::outcome::AbortInfo;
use crate::rules::{Rule, RuleSet, RulesError};

impl Chaos {
    /// Replaces all rules. Returns the new version.
    ///
    /// Rules that are unchanged keep their counters, sequences and expiry.
    ///
    /// # Errors
    ///
    /// The set does not validate; the rules in force stay.
    pub fn replace(&self, set: RuleSet) -> Result<u64, RulesError> {
        set.validate()?;
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.store(set))
    }

    /// Adds one rule at the end. Returns the new version.
    ///
    /// # Errors
    ///
    /// The rule does not validate or its id is taken.
    pub fn add_rule(&self, rule: Rule) -> Result<u64, RulesError> {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut set = self.compiled().set.clone();
        set.rules.push(rule);
        set.validate()?;
        Ok(self.store(set))
    }

    /// Removes the rule with this id. Returns the new version.
    ///
    /// # Errors
    ///
    /// No rule has this id.
    pub fn remove_rule(&self, id: &str) -> Result<u64, RulesError> {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut set = self.compiled().set.clone();
        let before = set.rules.len();
        set.rules.retain(|r| r.id != id);
        if set.rules.len() == before {
            return Err(RulesError::not_found(id));
        }
        Ok(self.store(set))
    }

    /// Stops a rule for good (until it is replaced by a changed rule), with a reason.
    ///
    /// # Errors
    ///
    /// No rule has this id.
    pub fn abort_rule(&self, id: &str, reason: &str) -> Result<(), RulesError> {
        let compiled = self.compiled();
        let rule = compiled.rule(id).ok_or_else(|| RulesError::not_found(id))?;
        self.abort_state(
            &rule.state,
            AbortInfo::new(reason.to_owned(), None),
            "manual",
        );
        Ok(())
    }

    fn store(&self, set: RuleSet) -> u64 {
        let prev = self.shared.compiled.load_full();
        self.removed().note(&prev, &set);
        let compiled = Arc::new(Compiled::new(set, Some(&prev), self.removed()));
        let n = compiled.rules.len();
        self.refresh_flags(&compiled);
        self.service_guard().reset(compiled.set.guard.as_ref());
        let wanted = crate::outcome::timings_wanted(compiled.set.guard.as_ref());
        self.shared.steady.want_timings(wanted);
        self.shared.compiled.store(compiled);
        // After the rules: a thread that sees this generation finds them in the swap.
        self.shared
            .generation
            .store(super::next_generation(), Ordering::Release);
        let v = self.shared.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.events().emit(Event::RulesChanged {
            version: v,
            rules: n,
        });
        v
    }

    pub(super) fn refresh_flags(&self, compiled: &Compiled) {
        let s = &self.shared;
        let killed =
            s.forced_off || s.runtime_killed.load(Ordering::SeqCst) || compiled.set.kill_switch;
        let changed = s.kill.set(killed);
        let anything =
            !compiled.rules.is_empty() || compiled.set.allow_directives || s.keys.is_some();
        // A hop recording reads every tagged request's point and target.
        #[cfg(feature = "test-util")]
        let anything = anything || s.hops.on();
        s.armed.store(!killed && anything, Ordering::SeqCst);
        if changed && killed {
            tracing::warn!(target: "chaos", "kill switch on: no new injections, in-flight delays released");
            // A flip, not an engine built with the switch on.
            if s.built.load(Ordering::Relaxed) {
                self.count_abort("*", "kill_switch");
            }
            self.events().emit(Event::Killed);
        } else if changed {
            tracing::info!(target: "chaos", "kill switch off");
            self.events().emit(Event::Resumed);
        }
    }

    /// Flips the kill switch on: no new injection happens, and every in-flight delay, hang
    /// and pause returns at once.
    ///
    /// ```
    /// use chaos_core::{Chaos, Point, RequestView};
    /// use chaos_core::rules::{Abort, Fault, Rule};
    ///
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("all-503", "server", Fault::Abort(Abort::http(503)))).unwrap();
    /// let view = RequestView::new(Point::Server, "");
    /// assert!(chaos.decide(&view).is_inject());
    /// chaos.kill();
    /// assert!(!chaos.decide(&view).is_inject());
    /// chaos.resume();
    /// assert!(chaos.decide(&view).is_inject());
    /// ```
    pub fn kill(&self) {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.runtime_killed.store(true, Ordering::SeqCst);
        self.refresh_flags(&self.compiled());
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Flips the kill switch off (unless the rules say `kill_switch: true` or the engine
    /// was built disabled).
    pub fn resume(&self) {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.runtime_killed.store(false, Ordering::SeqCst);
        self.service_guard().clear();
        self.refresh_flags(&self.compiled());
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the kill switch is on.
    pub fn is_killed(&self) -> bool {
        self.shared.kill.is_on()
    }

    /// Resolves when the kill switch is on (at once if it already is). Adapters use it to
    /// cut their own waits short, as [`Wait`](crate::Wait) does.
    pub async fn killed(&self) {
        self.shared.kill.wait().await;
    }

    /// The version of the engine's state: bumped by every change of rules, by the kill
    /// switch (both ways) and by aborting a rule.
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The rules in force.
    pub fn rules(&self) -> RuleSet {
        self.compiled().set.clone()
    }

    /// Receives engine events. Subscribing costs nothing on the path that matches nothing;
    /// a slow receiver misses events (the channel keeps the last 1024) rather than slowing
    /// requests.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }
}
