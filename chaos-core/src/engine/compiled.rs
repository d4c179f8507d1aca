//! The rules in force, compiled for deciding: each rule's schedule, rate, limits and
//! runtime state, beside the index that finds its candidates and the contexts judged by
//! their limits. The engine swaps a whole `Compiled` at each change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderName;
use tokio::time::Instant;

use crate::context::cache::ContextCache;
use crate::decision::RuleState;
use crate::index::RuleIndex;
use crate::rules::{DEFAULT_TTL, Fault, Mode, Rate, Rule, RuleSet, Step};

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

pub(crate) enum Sticky {
    Header(HeaderName),
    Scenario,
}

pub(crate) struct Schedule {
    steps: Box<[bool]>,
    cyclic: bool,
}

impl Schedule {
    fn from_rule(r: &Rule) -> Option<Schedule> {
        if let Some(seq) = &r.sequence {
            return Some(Schedule {
                steps: seq.iter().map(|s| *s == Step::Inject).collect(),
                cyclic: false,
            });
        }
        if let Some(n) = r.first {
            let mut steps = vec![true; n as usize];
            steps.push(false);
            return Some(Schedule {
                steps: steps.into(),
                cyclic: false,
            });
        }
        if let Some(n) = r.every {
            let mut steps = vec![false; n as usize];
            steps[n as usize - 1] = true;
            return Some(Schedule {
                steps: steps.into(),
                cyclic: true,
            });
        }
        None
    }

    /// Whether the `n`th (0-based) matching request of a scope injects.
    pub(crate) fn step(&self, n: u64) -> bool {
        let len = self.steps.len() as u64;
        let i = if self.cyclic { n % len } else { n.min(len - 1) };
        self.steps[i as usize]
    }
}

pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) fault: Arc<Fault>,
    pub(crate) scenario: Option<Box<str>>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) rate: Rate,
    pub(crate) sticky: Option<Sticky>,
    pub(crate) max_active: Option<u32>,
    pub(crate) max_hits: Option<u64>,
    pub(crate) mode: Mode,
    pub(crate) state: Arc<RuleState>,
}

impl CompiledRule {
    /// The rate in force now: a ramp's step, else the rule's rate.
    #[inline]
    pub(crate) fn rate_now(&self, now: Instant) -> Rate {
        self.state.outcomes.ramp_rate(now).unwrap_or(self.rate)
    }
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
                    (None, None) => now + default_ttl,
                };
                Arc::new(RuleState::new(r, now, expires_at))
            });
            let sticky = r.sticky_by.as_deref().map(|k| match k {
                "scenario" => Sticky::Scenario,
                h => Sticky::Header(HeaderName::try_from(h).expect("validated header name")),
            });
            rules.push(CompiledRule {
                id: r.id.as_str().into(),
                fault: Arc::new(r.fault.clone()),
                scenario: r.matcher.scenario.as_deref().map(Into::into),
                schedule: Schedule::from_rule(r),
                rate: r.rate,
                sticky,
                max_active: r.max_active,
                max_hits: r.max_hits,
                mode: r.mode,
                state,
            });
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
