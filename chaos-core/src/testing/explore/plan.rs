//! What an exploration tries: the hops a test reached, named so a map file stays stable,
//! the faults that fit each point, and plans, each a fault (or a chain of them) at exactly
//! one call.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::ExploreError;
use crate::hops::Hop;
use crate::rules::{Abort, Delay, DropKind, ErrorKind, Fault, Rule, Step};

/// A hop as a map names it: a point, a target, and which call of that pair the test made
/// (from 1). It holds no port, id or time, so it is the same from run to run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct HopId {
    /// The point: `server`, `client`, `sql` or a name given to `Chaos::inject`.
    pub point: String,
    /// The target (empty: an adapter given no target name).
    pub target: String,
    /// Which call of this point and target, from 1.
    pub call: u32,
}

impl HopId {
    /// The hop `hop` was.
    pub fn of(hop: &Hop) -> HopId {
        HopId {
            point: hop.point.clone(),
            target: hop.target.clone(),
            call: hop.call,
        }
    }

    /// Reads a hop as [`Display`](fmt::Display) writes it: `client payments`,
    /// `client payments #2`, `server`.
    pub(crate) fn parse(s: &str) -> Option<HopId> {
        let mut words = s.split_whitespace().collect::<Vec<_>>();
        let mut call = 1;
        if let Some(n) = words.last().and_then(|w| w.strip_prefix('#')) {
            call = n.parse().ok().filter(|n| *n > 0)?;
            words.pop();
        }
        match words[..] {
            [point] => Some(HopId {
                point: point.to_owned(),
                target: String::new(),
                call,
            }),
            [point, target] => Some(HopId {
                point: point.to_owned(),
                target: target.to_owned(),
                call,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for HopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.point)?;
        if !self.target.is_empty() {
            write!(f, " {}", self.target)?;
        }
        if self.call > 1 {
            write!(f, " #{}", self.call)?;
        }
        Ok(())
    }
}

/// Reads a fault as a map and a plan id write it (`abort 503`, `error sqlstate:40001`),
/// or as the `x-chaos` header does (`abort=503`).
pub(crate) fn parse_fault(s: &str) -> Result<Fault, String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let (kind, rest) = s.split_at(end);
    let value = rest.trim_start_matches([' ', '=', ':']).trim();
    if kind.is_empty() || value.is_empty() {
        return Err(format!(
            "fault `{s}` is not `KIND VALUE`, e.g. `abort 503`, `drop reset`, `error sqlstate:40001`, `delay 1s`"
        ));
    }
    Fault::parse_short(kind, value).map_err(|e| format!("fault `{s}`: {e}"))
}

/// The faults tried at each point: see [`Explore::faults`](super::Explore::faults).
#[derive(Clone, Debug)]
pub struct FaultSet {
    by_point: BTreeMap<String, Vec<Fault>>,
}

impl Default for FaultSet {
    fn default() -> FaultSet {
        let http = vec![
            Fault::Abort(Abort::http(503)),
            Fault::Drop(DropKind::Reset),
            Fault::Drop(DropKind::Hang),
        ];
        let sql = vec![
            Fault::Error(ErrorKind::SqlState(*b"40001")),
            Fault::Error(ErrorKind::Unavailable),
            Fault::Error(ErrorKind::Timeout),
        ];
        let mut by_point = BTreeMap::new();
        by_point.insert("server".to_owned(), http.clone());
        by_point.insert("client".to_owned(), http);
        by_point.insert("sql".to_owned(), sql);
        FaultSet { by_point }
    }
}

impl FaultSet {
    /// The faults of a point of `Chaos::inject` that has no set of its own.
    fn named() -> Vec<Fault> {
        vec![
            Fault::Error(ErrorKind::Unavailable),
            Fault::Delay(Delay::Fixed(Duration::from_secs(1))),
        ]
    }

    /// The faults tried at `point`.
    pub fn at(&self, point: &str) -> Vec<Fault> {
        self.by_point
            .get(point)
            .cloned()
            .unwrap_or_else(FaultSet::named)
    }

    pub(crate) fn set(&mut self, point: &str, faults: Vec<Fault>) {
        self.by_point.insert(point.to_owned(), faults);
    }
}

/// A plan's name: its hop and fault, after the hop and fault that revealed it, if any
/// (`client payments × abort 503`, `client payments × abort 503 → cache.get users × error
/// unavailable`). Set it in `CHAOS_EXPLORE_PLAN` to run that plan alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(pub(crate) String);

impl PlanId {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One fault at one call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FaultAt {
    pub(crate) hop: HopId,
    pub(crate) fault: Fault,
}

impl fmt::Display for FaultAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.hop, self.fault)
    }
}

/// Faults injected together in one run of the test, each at exactly its call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<FaultAt>,
}

impl Plan {
    pub(crate) fn id(&self) -> PlanId {
        PlanId(
            self.steps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" → "),
        )
    }

    /// The last step: the hop and fault this plan is about (those before revealed it).
    pub(crate) fn last(&self) -> &FaultAt {
        self.steps.last().expect("a plan has a step")
    }

    /// The hops this plan's faults hit.
    pub(crate) fn hops(&self) -> impl Iterator<Item = &HopId> {
        self.steps.iter().map(|s| &s.hop)
    }

    /// Reads a plan back from its id.
    pub(crate) fn parse(id: &str) -> Result<Plan, ExploreError> {
        let bad = |why: String| ExploreError::BadPlan {
            plan: id.to_owned(),
            why,
        };
        let steps = id
            .split('→')
            .map(|step| {
                let (hop, fault) = step
                    .split_once('×')
                    .ok_or_else(|| bad(format!("`{}` is not `HOP × FAULT`", step.trim())))?;
                let hop = HopId::parse(hop)
                    .ok_or_else(|| bad(format!("`{}` is not `POINT TARGET [#N]`", hop.trim())))?;
                let fault = parse_fault(fault).map_err(bad)?;
                Ok(FaultAt { hop, fault })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan { steps })
    }

    /// The rules that make the plan, in the order they go in, each with its step: each
    /// fault at exactly its call of its point and target (the caller scopes them to the
    /// plan's scenario).
    ///
    /// A request takes the first rule that injects, so a rule for a later call of a pair
    /// goes in first: it counts the earlier call (a pass for it) before the rule for that
    /// call injects and ends the decision.
    pub(crate) fn rules(&self) -> Vec<(&FaultAt, Rule)> {
        let mut rules = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut steps = vec![Step::Pass; s.hop.call as usize - 1];
                steps.extend([Step::Inject, Step::Pass]);
                // An empty target is a target too: the rule matches only the adapter
                // given no name, never every target of the point.
                let rule = Rule::new(format!("explore-{i}"), &s.hop.point, s.fault.clone())
                    .with_target(&s.hop.target)
                    .with_sequence(steps);
                (s, rule)
            })
            .collect::<Vec<_>>();
        rules.sort_by_key(|(s, _)| std::cmp::Reverse(s.hop.call));
        rules
    }

    /// Where the plan goes in the table and the map, the same from run to run: its steps,
    /// then per step its hop's place in the run without faults (a revealed hop after them,
    /// by name) and its fault's place in the point's set.
    pub(crate) fn rank(&self, stable: &[HopId], faults: &FaultSet) -> (usize, Vec<Rank>) {
        let per_step = self
            .steps
            .iter()
            .map(|s| {
                let at = stable.iter().position(|h| *h == s.hop);
                Rank {
                    hop: at.unwrap_or(usize::MAX),
                    revealed: if at.is_some() {
                        String::new()
                    } else {
                        format!("{} {}", s.hop.point, s.hop.target)
                    },
                    call: s.hop.call,
                    fault: faults
                        .at(&s.hop.point)
                        .iter()
                        .position(|f| *f == s.fault)
                        .unwrap_or(usize::MAX),
                }
            })
            .collect();
        (self.steps.len(), per_step)
    }
}

/// One step's place: see [`Plan::rank`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    hop: usize,
    revealed: String,
    call: u32,
    fault: usize,
}
