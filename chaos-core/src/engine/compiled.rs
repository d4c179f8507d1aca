//! The rules in force, compiled: the set as loaded, each rule as the decider reads it
//! (with its runtime state, kept across reloads that leave it unchanged), the index that
//! finds a request's candidates, and the contexts judged by the set's limits. The engine
//! swaps a whole `Compiled` at each change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::context::cache::ContextCache;
use crate::decision::{CompiledRule, RuleState};
use crate::index::RuleIndex;
use crate::rules::{DEFAULT_TTL, Rule, RuleSet};

/// A validated rule set, ready for decisions.
pub(crate) struct Compiled {
    pub(crate) set: RuleSet,
    pub(crate) index: RuleIndex,
    pub(crate) rules: Vec<CompiledRule>,
    /// Whether any rule is at a point other than `server`: only then can a request's
    /// hops match rules, and does a server layer open a scope for them.
    pub(crate) downstream: bool,
    /// The contexts made lately from inbound headers, judged by these rules' limits.
    pub(crate) contexts: ContextCache,
}

/// Rules removed lately, with their state, so one added back unchanged carries on where it
/// was. Bounded: the oldest are forgotten.
#[derive(Default)]
pub(crate) struct Removed {
    rules: std::sync::Mutex<std::collections::VecDeque<(Rule, Duration, Arc<RuleState>)>>,
}

/// Removed rules remembered.
const REMEMBERED: usize = 256;

impl Removed {
    /// Remembers the rules of `prev` that `next` no longer has.
    pub(crate) fn note(&self, prev: &Compiled, next: &RuleSet) {
        let mut m = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let default_ttl = prev.set.defaults.ttl.map_or(DEFAULT_TTL, |d| d.0);
        for (spec, c) in prev.set.rules.iter().zip(&prev.rules) {
            if next.rules.iter().any(|r| r.id == spec.id) {
                continue;
            }
            m.retain(|(r, _, _)| r.id != spec.id);
            m.push_back((spec.clone(), default_ttl, c.state.clone()));
            if m.len() > REMEMBERED {
                m.pop_front();
            }
        }
    }

    fn find(&self, r: &Rule, default_ttl: Duration) -> Option<Arc<RuleState>> {
        let m = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let own_expiry = r.ttl.is_some() || r.expires_at.is_some();
        m.iter()
            .find(|(spec, ttl, _)| spec == r && (own_expiry || *ttl == default_ttl))
            .map(|(_, _, st)| st.clone())
    }
}

/// How long a rule held by a test's guard, with no expiry of its own, lives: for ever, in
/// practice (far enough that no paused clock's leap reaches it, near enough not to
/// overflow an `Instant`).
pub(crate) const HELD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Compiled {
    pub(crate) fn empty() -> Compiled {
        Compiled {
            set: RuleSet::default(),
            index: RuleIndex::default(),
            rules: Vec::new(),
            downstream: false,
            contexts: ContextCache::default(),
        }
    }

    /// Compiles a validated set; rules unchanged since `prev`, or since they were removed
    /// (`removed`), keep their state.
    pub(crate) fn new(set: RuleSet, prev: Option<&Compiled>, removed: &Removed) -> Compiled {
        let now = Instant::now();
        let wall = SystemTime::now();
        let default_ttl = set.defaults.ttl.map_or(DEFAULT_TTL, |d| d.0);
        let mut rules = Vec::with_capacity(set.rules.len());
        let previous: HashMap<&str, usize> = prev
            .map(|p| {
                p.set
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| (r.id.as_str(), j))
                    .collect()
            })
            .unwrap_or_default();
        for r in &set.rules {
            // An unchanged rule (same id, same definition, same time to live) keeps its
            // counters and expiry. A rule that takes its ttl from `defaults.ttl` changes when
            // that does, and starts afresh as if its own `ttl` had changed.
            let reused = prev.and_then(|p| {
                let j = *previous.get(r.id.as_str())?;
                let own_expiry = r.ttl.is_some() || r.expires_at.is_some();
                let prev_default = p.set.defaults.ttl.map_or(DEFAULT_TTL, |d| d.0);
                let same = p.set.rules[j] == *r && (own_expiry || prev_default == default_ttl);
                same.then(|| p.rules[j].state.clone())
            });
            // A rule removed and added back unchanged (an aborted rule stays aborted).
            let reused = reused.or_else(|| removed.find(r, default_ttl));
            let state = reused.unwrap_or_else(|| {
                let expires_at = match (r.ttl, r.expires_at) {
                    (Some(ttl), _) => now + ttl.0,
                    (None, Some(at)) => now + at.0.duration_since(wall).unwrap_or(Duration::ZERO),
                    // A test's guard is its lifetime.
                    (None, None) if r.lives_with_guard() => now + HELD,
                    (None, None) => now + default_ttl,
                };
                Arc::new(RuleState::new(r, now, expires_at))
            });
            rules.push(CompiledRule::new(r, state));
        }
        let index = RuleIndex::new(&set.rules);
        let downstream = set.rules.iter().any(|r| r.point != "server");
        Compiled {
            set,
            index,
            rules,
            downstream,
            contexts: ContextCache::default(),
        }
    }

    pub(crate) fn rule(&self, id: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}
