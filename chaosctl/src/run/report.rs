//! The run's record and its writers: the table on standard output, JSON, JUnit (the
//! HTML page is `crate::html`, from the JSON).

use std::time::Duration;

use chaos_core::rules::Dur;
use serde::Serialize;
use serde_json::Value;

use super::Verdict;
use super::checks::{
    Figures, Outcome, PHASES, Phase, PhaseMark, QueryFigures, Seen, figures, query_figures, within,
};
use crate::experiment_file::{Bound, Experiment};
use crate::out::{bold, mark, say, table};

/// The run's record: everything the report says.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) title: String,
    pub(super) hypothesis: String,
    pub(super) owner: Option<String>,
    pub(super) scenario: String,
    pub(super) verdict: Verdict,
    pub(super) reason: String,
    /// Where the admin endpoints came from, and which they were.
    pub(super) instances: Instances,
    pub(super) phases: Vec<PhaseReport>,
    /// Each query's figures per phase.
    pub(super) queries: Vec<QueryPhase>,
    pub(super) injected: Vec<Injected>,
    /// What the rules did, per rule and instance, at the end of the inject phase.
    pub(super) injections: Vec<Injections>,
    /// Things to look at that do not change the verdict: rules an instance cannot fire,
    /// instances where a rule injected nothing while others did, instances that appeared
    /// mid-run.
    pub(super) warnings: Vec<String>,
    /// Per check (probe or query, and `injections`), why it failed: the phase, the figure
    /// and the tolerance.
    pub(super) failures: Vec<CheckFailure>,
    pub(super) recovered: Option<bool>,
    pub(super) rolled_back: bool,
    pub(super) rollback_failures: Vec<String>,
    /// When the abort came, since the run began.
    pub(super) aborted_at: Option<Dur>,
    /// When each phase began.
    pub(super) phase_marks: Vec<PhaseMark>,
    pub(super) timeline: Vec<Point>,
    /// Each query's value at each evaluation.
    pub(super) query_timeline: Vec<QueryPoint>,
    /// The cohorts of the experiment's rules, summed over rules and instances, while the
    /// rules were in.
    pub(super) cohort_timeline: Vec<CohortPoint>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Instances {
    /// `the experiment file`, or `Prometheus job NAME at URL`.
    pub(super) from: String,
    pub(super) admins: Vec<String>,
}

/// Totals of both cohorts at one moment of the run.
#[derive(Clone, Debug, Serialize)]
pub(super) struct CohortPoint {
    pub(super) at: Dur,
    pub(super) experiment: Totals,
    pub(super) control: Totals,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(super) struct Totals {
    pub(super) requests: u64,
    pub(super) errors: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct PhaseReport {
    pub(super) phase: Phase,
    pub(super) probe: String,
    #[serde(flatten)]
    pub(super) figures: Figures,
    pub(super) within_tolerance: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct QueryPhase {
    pub(super) phase: Phase,
    pub(super) query: String,
    pub(super) tolerance: String,
    /// The tolerance's bounds, as numbers.
    pub(super) bound: Bound,
    #[serde(flatten)]
    pub(super) figures: QueryFigures,
    pub(super) within_tolerance: bool,
}

/// One evaluation of a query, for the timeline.
#[derive(Debug, Serialize)]
pub(super) struct QueryPoint {
    pub(super) query: String,
    pub(super) at: Dur,
    /// The value (the first series' for an aggregate `by`); none without data.
    pub(super) value: Option<f64>,
    /// Out of the steady state's tolerance.
    pub(super) breach: bool,
    /// Why there is no value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) note: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Injected {
    pub(super) admin: String,
    pub(super) rule: String,
    /// The rule's state and cohorts on that instance when it was last read.
    pub(super) snapshot: Value,
}

/// What one rule did on one instance.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Injections {
    pub(super) rule: String,
    pub(super) admin: String,
    pub(super) matched: u64,
    /// Injected, or (a shadow rule) would have injected.
    pub(super) injected: u64,
}

/// Why one check failed.
#[derive(Clone, Debug, Serialize)]
pub(super) struct CheckFailure {
    /// `probe NAME`, `query NAME`, or `injections`.
    pub(super) check: String,
    pub(super) message: String,
}

/// The width of one timeline point.
pub(super) const SLICE: std::time::Duration = std::time::Duration::from_millis(250);

/// A probe's figures over one slice of the run (a quarter second), for the timeline.
#[derive(Debug, Serialize)]
pub(super) struct Point {
    pub(super) probe: String,
    /// The slice's start, since the run began.
    pub(super) at: Dur,
    #[serde(flatten)]
    pub(super) figures: Figures,
}

pub(super) fn print_report(r: &Report, json_out: bool) {
    if !r.rolled_back {
        // Loud, and on standard error, whatever the format of the report.
        eprintln!(
            "{}",
            mark(
                &format!(
                    "ROLLBACK FAILED: the experiment's rules are still in force; remove them by hand (chaosctl remove ID): {}",
                    r.rollback_failures.join("; ")
                ),
                false
            )
        );
    }
    if json_out {
        say!("{}", serde_json::to_string_pretty(r).expect("JSON"));
        return;
    }
    say!("{}", bold(&r.title));
    say!("hypothesis: {}", r.hypothesis);
    if let Some(o) = &r.owner {
        say!("owner: {o}");
    }
    say!("scenario: {}", r.scenario);
    say!(
        "instances: {} from {}",
        r.instances.admins.len(),
        r.instances.from
    );
    say!();
    if !r.phases.is_empty() {
        let mut rows = vec![
            [
                "PHASE",
                "PROBE",
                "REQUESTS",
                "ERRORS",
                "ERROR RATE",
                "P99",
                "WITHIN TOLERANCE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for p in &r.phases {
            rows.push(vec![
                p.phase.name().to_owned(),
                p.probe.clone(),
                p.figures.requests.to_string(),
                p.figures.errors.to_string(),
                format!("{:.2}%", p.figures.error_rate * 100.0),
                p.figures.p99.map_or("-".into(), |d| d.to_string()),
                mark(
                    if p.within_tolerance { "yes" } else { "no" },
                    p.within_tolerance,
                ),
            ]);
        }
        table(&rows);
        say!();
    }
    if !r.queries.is_empty() {
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
        let mut rows = vec![
            [
                "PHASE",
                "QUERY",
                "EVALUATIONS",
                "NO DATA",
                "MIN",
                "MAX",
                "LAST",
                "TOLERANCE",
                "WITHIN TOLERANCE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for q in &r.queries {
            rows.push(vec![
                q.phase.name().to_owned(),
                q.query.clone(),
                q.figures.evaluations.to_string(),
                q.figures.unjudged.to_string(),
                num(q.figures.min),
                num(q.figures.max),
                num(q.figures.last),
                q.tolerance.clone(),
                mark(
                    if q.within_tolerance { "yes" } else { "no" },
                    q.within_tolerance,
                ),
            ]);
        }
        table(&rows);
        say!();
    }
    if !r.injected.is_empty() {
        let mut rows = vec![
            [
                "RULE",
                "ADMIN",
                "STATE",
                "MATCHED",
                "INJECTED",
                "EXPERIMENT req/err",
                "CONTROL req/err",
                "GUARD",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for i in &r.injected {
            let s = &i.snapshot;
            let c = |k: &str| {
                format!(
                    "{}/{}",
                    s["cohorts"][k]["total_requests"], s["cohorts"][k]["total_errors"]
                )
            };
            let n = r
                .injections
                .iter()
                .find(|n| n.rule == i.rule && n.admin == i.admin);
            rows.push(vec![
                i.rule.clone(),
                i.admin.clone(),
                s["state"].as_str().unwrap_or("-").to_owned(),
                n.map_or("-".into(), |n| n.matched.to_string()),
                n.map_or("-".into(), |n| n.injected.to_string()),
                c("experiment"),
                c("control"),
                s["guard"].as_str().unwrap_or("-").to_owned(),
            ]);
        }
        table(&rows);
        say!();
    }
    for w in &r.warnings {
        say!("{} {w}", mark("warning:", false));
    }
    if !r.warnings.is_empty() {
        say!();
    }
    if let Some(rec) = r.recovered {
        say!(
            "recovered: {}",
            if rec {
                mark("yes", true)
            } else {
                mark("no", false)
            }
        );
    }
    let good = r.verdict == Verdict::Held;
    say!(
        "verdict: {} — {}",
        mark(&format!("{:?}", r.verdict).to_uppercase(), good),
        r.reason
    );
}

/// One JUnit test case per probe and per query, one for the cohorts when the steady state
/// has a cohort tolerance, and one for the injections: a failure
/// whose message names the check, the phase, the figure and the tolerance (or, for a run
/// aborted or not done, the reason).
pub(super) fn junit(r: &Report, x: &Experiment) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut names: Vec<String> = x
        .steady_state
        .probes
        .iter()
        .map(|p| format!("probe {}", p.name))
        .collect();
    names.extend(
        x.steady_state
            .queries
            .iter()
            .map(|q| format!("query {}", q.name)),
    );
    if x.steady_state.cohorts.is_some() {
        names.push("cohorts".into());
    }
    names.push("injections".into());
    let mut cases = String::new();
    let mut failures = 0;
    for name in &names {
        let own = r.failures.iter().find(|f| f.check == *name);
        let failure = match (r.verdict, own) {
            (_, Some(f)) => Some(f.message.clone()),
            (Verdict::Held | Verdict::Refuted, None) => None,
            // Aborted, or not done: every check fails with the run's reason.
            (Verdict::Aborted | Verdict::Error, None) => Some(r.reason.clone()),
        };
        cases.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\">",
            esc(&r.scenario),
            esc(name)
        ));
        if let Some(f) = failure {
            failures += 1;
            cases.push_str(&format!(
                "<failure message=\"{}\" type=\"{:?}\"/>",
                esc(&f),
                r.verdict
            ));
        }
        cases.push_str("</testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n{cases}</testsuite>\n",
        esc(&r.title),
        names.len()
    )
}

/// The report's figures from what the checks saw: each probe and query per phase (with
/// each check's failure, its phase, figure and tolerance), and the timelines.
pub(super) fn fill(x: &Experiment, seen: &Seen, report: &mut Report) {
    for phase in PHASES {
        for (i, p) in x.steady_state.probes.iter().enumerate() {
            let samples: Vec<_> = seen
                .of(i)
                .into_iter()
                .filter(|s| s.phase == phase)
                .collect();
            if samples.is_empty() && phase != Phase::Baseline {
                continue;
            }
            let f = figures(samples.into_iter());
            let judged = within(p, &f);
            if let Err(why) = &judged
                && phase != Phase::Baseline
                && !report
                    .failures
                    .iter()
                    .any(|c| c.check == format!("probe {}", p.name))
            {
                report.failures.push(CheckFailure {
                    check: format!("probe {}", p.name),
                    message: format!("in the {} phase, {why}", phase.name()),
                });
            }
            report.phases.push(PhaseReport {
                phase,
                probe: p.name.clone(),
                within_tolerance: judged.is_ok(),
                figures: f,
            });
        }
        for (i, q) in x.steady_state.queries.iter().enumerate() {
            let evals: Vec<_> = seen
                .evals(i)
                .into_iter()
                .filter(|e| e.phase == phase)
                .collect();
            if evals.is_empty() {
                continue;
            }
            let f = query_figures(q, &evals);
            let ok = if phase == Phase::Recovery {
                // Came back: its last value is within tolerance (or it has none).
                evals
                    .last()
                    .and_then(|e| e.outcome.value())
                    .is_none_or(|v| q.bound().holds(v))
            } else {
                f.breaches == 0
            };
            let check = format!("query {}", q.name);
            if !ok && phase != Phase::Baseline && !report.failures.iter().any(|c| c.check == check)
            {
                report.failures.push(CheckFailure {
                    check,
                    message: format!(
                        "in the {} phase, query `{}` was out of tolerance {} at {} of {} evaluations (min {}, max {}, last {})",
                        phase.name(),
                        q.name,
                        q.bound(),
                        f.breaches.max(1),
                        f.evaluations,
                        fmt_num(f.min),
                        fmt_num(f.max),
                        fmt_num(f.last)
                    ),
                });
            }
            report.queries.push(QueryPhase {
                phase,
                query: q.name.clone(),
                tolerance: q.bound().to_string(),
                bound: q.bound(),
                figures: f,
                within_tolerance: ok,
            });
        }
    }
    for (i, p) in x.steady_state.probes.iter().enumerate() {
        let all = seen.of(i);
        let slice = |at: Duration| (at.as_nanos() / SLICE.as_nanos()) as u32;
        let last = all.iter().map(|s| slice(s.at)).max().unwrap_or(0);
        for n in 0..=last {
            let mine: Vec<_> = all.iter().copied().filter(|s| slice(s.at) == n).collect();
            if mine.is_empty() {
                continue;
            }
            report.timeline.push(Point {
                probe: p.name.clone(),
                at: Dur(SLICE * n),
                figures: figures(mine.into_iter()),
            });
        }
    }
    for (i, q) in x.steady_state.queries.iter().enumerate() {
        for e in seen.evals(i) {
            report.query_timeline.push(QueryPoint {
                query: q.name.clone(),
                at: Dur(e.at),
                value: e.outcome.value(),
                breach: e.outcome.value().is_some_and(|v| !q.bound().holds(v)),
                note: match &e.outcome {
                    Outcome::Values(_) => None,
                    Outcome::NoData(why) => Some((*why).to_owned()),
                    Outcome::Failed(why) => Some(why.clone()),
                },
            });
        }
    }
    report.phase_marks = seen.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
}

fn fmt_num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v}"))
}
