//! A rule compiled for deciding: its schedule, rate, sticky cohort and limits, beside its
//! runtime state.

use std::sync::Arc;

use http::HeaderName;
use tokio::time::Instant;

use super::state::RuleState;
use crate::rules::{Fault, Mode, Rate, Rule, Step};

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

/// One rule as the decider reads it: what to inject, when, how often, within what
/// limits, and its runtime state.
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
    /// `r` compiled, with `state` (kept from before, or new).
    pub(crate) fn new(r: &Rule, state: Arc<RuleState>) -> CompiledRule {
        let sticky = r.sticky_by.as_deref().map(|k| match k {
            "scenario" => Sticky::Scenario,
            h => Sticky::Header(HeaderName::try_from(h).expect("validated header name")),
        });
        CompiledRule {
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
        }
    }

    /// The rate in force now: a ramp's step, else the rule's rate.
    #[inline]
    pub(crate) fn rate_now(&self, now: Instant) -> Rate {
        self.state.outcomes.ramp_rate(now).unwrap_or(self.rate)
    }
}
