//! What judges a run, as one kind of thing: a check is a probe (a stream of canary
//! requests, judged by its error rate and p99) or a query (PromQL evaluated by Prometheus
//! every interval, judged by its value). Both are recorded per phase, judged against the
//! steady state's tolerances, and watched by the abort conditions.

mod probes;
mod queries;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::rules::Dur;
use serde::Serialize;

use crate::experiment_file::Experiment;

pub(super) use self::probes::{Figures, figures, probe, probe_abort, probes_hold, within};
pub(super) use self::queries::{
    QueryFigures, evaluate, queries_hold, query_abort, query_figures, watch_queries,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Phase {
    Baseline,
    Inject,
    Recovery,
}

pub(super) const PHASES: [Phase; 3] = [Phase::Baseline, Phase::Inject, Phase::Recovery];

impl Phase {
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Inject => "inject",
            Phase::Recovery => "recovery",
        }
    }
}

/// One canary request's outcome.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// When it was sent, since the run began.
    pub(super) at: Duration,
    pub(super) phase: Phase,
    pub(super) ok: bool,
    pub(super) latency: Duration,
}

/// One evaluation of a query.
#[derive(Clone, Debug)]
pub(super) struct Eval {
    /// When it was asked, since the run began.
    pub(super) at: Duration,
    pub(super) phase: Phase,
    pub(super) outcome: Outcome,
}

/// What an evaluation gave.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    /// The value, or each series' (labels, value) of an aggregate `by`.
    Values(Vec<(String, f64)>),
    /// Nothing to judge: no series, or NaN (why).
    NoData(&'static str),
    /// Prometheus could not be asked, refused the query, or answered several series
    /// where one was wanted.
    Failed(String),
}

impl Outcome {
    /// The values that are numbers.
    fn numbers(&self) -> impl Iterator<Item = (&str, f64)> {
        let v: &[(String, f64)] = match self {
            Outcome::Values(v) => v,
            _ => &[],
        };
        v.iter()
            .filter(|(_, x)| !x.is_nan())
            .map(|(l, x)| (l.as_str(), *x))
    }

    /// The value to draw: the first number.
    pub(super) fn value(&self) -> Option<f64> {
        self.numbers().next().map(|(_, v)| v)
    }
}

/// What the checks saw, per probe and per query.
pub(super) struct Seen {
    pub(super) started: tokio::time::Instant,
    phase: AtomicU8,
    /// When each phase began.
    pub(super) marks: Mutex<Vec<PhaseMark>>,
    pub(super) stop: AtomicBool,
    samples: Vec<Mutex<Vec<Sample>>>,
    evals: Vec<Mutex<Vec<Eval>>>,
}

/// When a phase began.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct PhaseMark {
    pub(super) phase: Phase,
    pub(super) at: Dur,
}

impl Seen {
    pub(super) fn new(x: &Experiment) -> Arc<Seen> {
        Arc::new(Seen {
            started: tokio::time::Instant::now(),
            phase: AtomicU8::new(0),
            marks: Mutex::new(vec![PhaseMark {
                phase: Phase::Baseline,
                at: Dur(Duration::ZERO),
            }]),
            stop: AtomicBool::new(false),
            samples: x
                .steady_state
                .probes
                .iter()
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            evals: x
                .steady_state
                .queries
                .iter()
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        })
    }

    pub(super) fn phase(&self) -> Phase {
        PHASES[self.phase.load(Ordering::Acquire) as usize]
    }

    pub(super) fn set_phase(&self, p: Phase) {
        let i = PHASES.iter().position(|x| *x == p).expect("a phase");
        self.phase.store(i as u8, Ordering::Release);
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PhaseMark {
                phase: p,
                at: Dur(self.started.elapsed()),
            });
    }

    pub(super) fn of(&self, probe: usize) -> Vec<Sample> {
        self.samples[probe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn evals(&self, query: usize) -> Vec<Eval> {
        self.evals[query]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Why the checks of a phase do not hold.
#[derive(Debug)]
pub(super) enum Broke {
    /// A check is out of tolerance: the reason.
    Tolerance(String),
    /// A query could not be judged at all (Prometheus unreachable, a query refused).
    Blind(String),
}
