//! `chaosctl run`: an experiment, phase by phase, to a verdict.
//!
//! check → baseline (the steady state must hold before anything is injected) → inject →
//! observe (abort conditions and the rules' guards) → rollback (always: also on abort,
//! error or Ctrl-C) → recovery (the steady state must come back) → report.
//!
//! The steady state is judged by checks ([`checks`]): probes (canary requests) and
//! queries (PromQL, for a fleet). A run whose rules injected nothing has tested nothing:
//! it ends `error`, never `held` or `refuted`.

mod checks;
mod instances;
mod report;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaos_core::rules::{Dur, Rule};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use self::checks::{Broke, Phase, Seen, figures, probes_hold, queries_hold};
use self::report::{CheckFailure, CohortPoint, Instances, Report, junit, print_report};
use crate::admin::{AdminClient, route};
use crate::experiment_file::{self as experiment, CohortSource, Experiment};
use crate::out::{bold, mark};
use crate::prom::Prometheus;

/// The outcome of a run, and its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check stayed within tolerance while faults were injected.
    Held,
    /// A check broke: a finding, not a failure of the tool.
    Refuted,
    /// An abort condition or a rule's guard fired.
    Aborted,
    /// The run itself could not be done, or its rules injected nothing.
    Error,
}

impl Verdict {
    /// The exit code of `chaosctl run`: 0 held, 1 refuted, 2 aborted, 3 error.
    pub fn code(self) -> u8 {
        match self {
            Verdict::Held => 0,
            Verdict::Refuted => 1,
            Verdict::Aborted => 2,
            Verdict::Error => 3,
        }
    }
}

/// Options of `chaosctl run`.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// The environment variable that holds the admin token.
    pub token_env: String,
    /// The admin token itself (a program that started the services knows it); else read
    /// from `token_env`.
    pub token: Option<String>,
    /// Print the report as JSON instead of tables.
    pub json: bool,
    /// Also write a JUnit report here.
    pub junit: Option<PathBuf>,
    /// Also write the HTML report here.
    pub html: Option<PathBuf>,
}

pub(crate) fn main(args: RunArgs) -> u8 {
    let Some(rt) = crate::out::runtime() else {
        return Verdict::Error.code();
    };
    rt.block_on(run(args)).code()
}

/// Runs an experiment file to its verdict, printing the report as `chaosctl run` does.
/// Needs a multi-threaded tokio runtime.
pub async fn run(args: RunArgs) -> Verdict {
    run_with_report(args).await.0
}

/// [`run`], also giving the report as `--json` prints it (`Null` when the run could not
/// start: a refused file, no token, no instance).
pub async fn run_with_report(args: RunArgs) -> (Verdict, Value) {
    let (x, rules) = match experiment::load(&args.file) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{} {e}", mark("refused", false));
            return (Verdict::Error, Value::Null);
        }
    };
    let Some(token) = args
        .token
        .clone()
        .or_else(|| std::env::var(&args.token_env).ok())
        .filter(|t| !t.is_empty())
    else {
        eprintln!(
            "chaosctl: the admin token is read from ${}, which is unset or empty",
            args.token_env
        );
        return (Verdict::Error, Value::Null);
    };
    let prom = match &x.prometheus {
        None => None,
        Some(p) => {
            let token = p.token_env.as_ref().and_then(|v| std::env::var(v).ok());
            match Prometheus::new(&p.url, token) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("chaosctl: prometheus: {e}");
                    return (Verdict::Error, Value::Null);
                }
            }
        }
    };
    let instances = match instances::instances(&x, prom.as_ref()).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{} {e}", mark("not run:", false));
            return (Verdict::Error, Value::Null);
        }
    };
    let scenario = x.scenario.clone().unwrap_or_else(|| scenario_of(&x.title));
    let rules: Vec<Rule> = rules
        .into_iter()
        .map(|mut r| {
            if x.method.scoped && r.matcher.scenario.is_none() {
                r.matcher.scenario = Some(scenario.clone());
            }
            r
        })
        .collect();
    let admin = match AdminClient::new(token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaosctl: {e}");
            return (Verdict::Error, Value::Null);
        }
    };
    let (tx, interrupted) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
        // Kept open, so a wait never mistakes a closed channel for an interruption.
        std::future::pending::<()>().await;
        drop(tx);
    });
    let x = Arc::new(x);
    let mut run = Run {
        x: x.clone(),
        interrupted,
        rules,
        scenario,
        instances,
        admin,
        prom,
        added: Vec::new(),
        last_seen: Vec::new(),
        known: BTreeMap::new(),
        cohorts: Vec::new(),
    };
    let report = run.go().await;
    print_report(&report, args.json);
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit(&report, &x))
    {
        eprintln!("chaosctl: cannot write {}: {e}", path.display());
    }
    if let Some(path) = &args.html {
        let json = serde_json::to_value(&report).expect("a report serializes");
        if let Err(e) = std::fs::write(path, crate::html::page(&json)) {
            eprintln!("chaosctl: cannot write {}: {e}", path.display());
        }
    }
    let json = serde_json::to_value(&report).expect("a report serializes");
    (report.verdict, json)
}

/// A scenario name from a title: `Checkout survives!` → `checkout-survives-1733097600`.
fn scenario_of(title: &str) -> String {
    let mut s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(40);
    let s = s
        .trim_matches('-')
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{}-{t}", if s.is_empty() { "experiment" } else { &s })
}

struct Run {
    x: Arc<Experiment>,
    /// Turns `true` on Ctrl-C (SIGINT), and stays so: no signal is missed between waits.
    interrupted: tokio::sync::watch::Receiver<bool>,
    rules: Vec<Rule>,
    scenario: String,
    instances: Instances,
    admin: AdminClient,
    prom: Option<Prometheus>,
    /// (admin, rule id) added, to roll back.
    added: Vec<(String, String)>,
    /// The last snapshot of each added rule: (admin, rule id, rule JSON).
    last_seen: Vec<(String, String, Value)>,
    /// The points and targets each instance has: point → targets.
    known: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    cohorts: Vec<CohortPoint>,
}

/// Why the observation ended early.
enum Stop {
    Abort(String),
    Interrupted,
}

/// One call to the admin API: 5 seconds at most.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Run {
    async fn admin(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        self.admin
            .call(url, method, path, body, ADMIN_TIMEOUT)
            .await
            .into_result(url)
    }

    fn admins(&self) -> &[String] {
        &self.instances.admins
    }

    async fn go(&mut self) -> Report {
        let mut report = Report {
            title: self.x.title.clone(),
            hypothesis: self.x.hypothesis.clone(),
            owner: self.x.owner.clone(),
            scenario: self.scenario.clone(),
            verdict: Verdict::Error,
            reason: String::new(),
            instances: self.instances.clone(),
            phases: Vec::new(),
            queries: Vec::new(),
            injected: Vec::new(),
            injections: Vec::new(),
            warnings: Vec::new(),
            failures: Vec::new(),
            recovered: None,
            rolled_back: true,
            rollback_failures: Vec::new(),
            aborted_at: None,
            phase_marks: Vec::new(),
            timeline: Vec::new(),
            query_timeline: Vec::new(),
            cohort_timeline: Vec::new(),
        };
        // Check: every admin answers, and none has a rule of ours already.
        for a in self.admins() {
            match self.admin(Method::GET, a, route::RULES, None).await {
                Err(e) => {
                    report.reason = format!("check: {e}");
                    return report;
                }
                Ok(snap) => {
                    for r in &self.rules {
                        let taken = snap["rules"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|x| x["rule"]["id"] == r.id.as_str());
                        if taken {
                            report.reason = format!("check: {a} already has a rule `{}`", r.id);
                            return report;
                        }
                    }
                }
            }
        }
        let seen = Seen::new(&self.x);
        // The judge must see before anything is injected.
        let mut watcher = None;
        if let Some(prom) = &self.prom
            && !self.x.steady_state.queries.is_empty()
        {
            checks::evaluate(&self.x, prom, &seen).await;
            if let Err(Broke::Blind(why)) = queries_hold(&self.x, &seen, Phase::Baseline, false) {
                seen.stop.store(true, Ordering::Release);
                report.reason = format!("check: {why}; nothing was injected");
                report::fill(&self.x, &seen, &mut report);
                return report;
            }
            let interval = self
                .x
                .prometheus
                .as_ref()
                .map_or(Duration::from_secs(2), |p| p.interval.0);
            watcher = Some(tokio::spawn(checks::watch_queries(
                self.x.clone(),
                prom.clone(),
                interval,
                seen.clone(),
            )));
        }
        progress(&format!(
            "scenario {}: watching the steady state for {}",
            self.scenario, self.x.baseline
        ));
        let probes: Vec<_> = self
            .x
            .steady_state
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                tokio::spawn(checks::probe(
                    p.clone(),
                    i,
                    self.scenario.clone(),
                    self.admin.http().clone(),
                    seen.clone(),
                ))
            })
            .collect();
        let interrupted = self.wait(self.x.baseline.0).await;
        let outcome = if interrupted {
            Err(Stop::Interrupted)
        } else if let Err(why) = probes_hold(&self.x, &seen, Phase::Baseline) {
            report.reason = format!("not a steady state: {why}");
            Ok(false)
        } else if let Err(b) = queries_hold(&self.x, &seen, Phase::Baseline, false) {
            report.reason = match b {
                Broke::Tolerance(why) => format!("not a steady state: {why}"),
                Broke::Blind(why) => {
                    format!("the baseline could not be judged: {why}; nothing was injected")
                }
            };
            Ok(false)
        } else {
            self.inject_and_observe(&seen, &mut report)
                .await
                .map(|()| true)
        };
        // Rollback: always.
        self.rollback(&mut report).await;
        let injected = matches!(outcome, Ok(true) | Err(Stop::Abort(_)));
        if injected || matches!(outcome, Err(Stop::Interrupted)) && !self.added.is_empty() {
            seen.set_phase(Phase::Recovery);
        }
        let mut recovered = None;
        if injected {
            progress(&format!(
                "rolled back; watching recovery for {}",
                self.x.recovery
            ));
            let interrupted = self.wait(self.x.recovery.0).await;
            if !interrupted {
                recovered = Some(self.recovery_broke(&seen).is_none());
            }
        }
        seen.stop.store(true, Ordering::Release);
        for p in probes {
            p.abort();
        }
        if let Some(w) = watcher {
            w.abort();
        }
        report.recovered = recovered;
        report.cohort_timeline = self.cohorts.clone();
        report::fill(&self.x, &seen, &mut report);
        if let Some(why) = self.cohorts_broke() {
            report.failures.push(CheckFailure {
                check: "cohorts".into(),
                message: format!("in the inject phase, {why}"),
            });
        }
        let inject_broke = self.inject_broke(&seen);
        let nothing = matches!(outcome, Ok(true))
            .then(|| self.injected_nothing(&mut report))
            .flatten();
        (report.verdict, report.reason) = match outcome {
            Err(Stop::Interrupted) => (Verdict::Error, "interrupted (Ctrl-C); rolled back".into()),
            Err(Stop::Abort(why)) => (Verdict::Aborted, why),
            Ok(false) => (Verdict::Error, std::mem::take(&mut report.reason)),
            Ok(true) => match (nothing, inject_broke, recovered) {
                (Some(why), _, _) => (Verdict::Error, why),
                (None, Some(why), _) => (Verdict::Refuted, format!("during the injection, {why}")),
                (None, None, Some(false)) => (
                    Verdict::Refuted,
                    format!(
                        "the steady state did not come back: {}",
                        self.recovery_broke(&seen).unwrap_or_default()
                    ),
                ),
                (None, None, _) => (
                    Verdict::Held,
                    "every check stayed within tolerance while the faults were injected".into(),
                ),
            },
        };
        if !report.rollback_failures.is_empty() {
            report.verdict = Verdict::Error;
            report.rolled_back = false;
            report.reason = format!(
                "ROLLBACK FAILED, the experiment's rules are still in force: {}",
                report.rollback_failures.join("; ")
            );
        }
        report
    }

    /// Waits `d`, or until Ctrl-C: `true` when interrupted.
    async fn wait(&self, d: Duration) -> bool {
        let mut rx = self.interrupted.clone();
        let asked = tokio::select! {
            () = tokio::time::sleep(d) => false,
            r = rx.wait_for(|v| *v) => r.is_ok(),
        };
        asked || *self.interrupted.borrow()
    }

    async fn inject_and_observe(
        &mut self,
        seen: &Arc<Seen>,
        report: &mut Report,
    ) -> Result<(), Stop> {
        for rule in &self.rules.clone() {
            let body = serde_json::to_string(rule).expect("a rule serializes");
            for a in &self.admins().to_vec() {
                let reply = self
                    .admin
                    .call(
                        a,
                        Method::POST,
                        route::RULES,
                        Some(body.clone()),
                        ADMIN_TIMEOUT,
                    )
                    .await;
                for w in reply.warnings() {
                    progress(&format!("{} {a}: {w}", mark("warning:", false)));
                    report.warnings.push(format!("{a}: {w}"));
                }
                match reply.into_result(a) {
                    Ok(_) => self.added.push((a.clone(), rule.id.clone())),
                    Err(e) => {
                        report.aborted_at = Some(Dur(seen.started.elapsed()));
                        return Err(Stop::Abort(format!("could not inject: {e}")));
                    }
                }
            }
        }
        // The inject phase starts once every rule is in: no canary before counts in it.
        seen.set_phase(Phase::Inject);
        let inject_from = seen.started.elapsed();
        progress(&format!(
            "injected {} rules on {} instances; observing for {}",
            self.rules.len(),
            self.admins().len(),
            self.x.method.duration
        ));
        let from_prometheus = self
            .x
            .steady_state
            .cohorts
            .as_ref()
            .is_some_and(|c| c.from == CohortSource::Prometheus);
        let interval = self
            .x
            .prometheus
            .as_ref()
            .map_or(Duration::from_secs(2), |p| p.interval.0);
        let mut next_prom_read = tokio::time::Instant::now();
        let end = tokio::time::Instant::now() + self.x.method.duration.0;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let outcome = loop {
            tick.tick().await;
            if *self.interrupted.borrow() {
                break Err(Stop::Interrupted);
            }
            let now = seen.started.elapsed();
            if tokio::time::Instant::now() >= end {
                live(None);
                break Ok(());
            }
            live(Some(&self.live_line(seen, now.saturating_sub(inject_from))));
            let abort = checks::probe_abort(&self.x, seen, now, inject_from)
                .or_else(|| checks::query_abort(&self.x, seen, now, inject_from));
            if let Some(why) = abort {
                live(None);
                report.aborted_at = Some(Dur(now));
                break Err(Stop::Abort(why));
            }
            let fired = if from_prometheus {
                if tokio::time::Instant::now() < next_prom_read {
                    None
                } else {
                    next_prom_read = tokio::time::Instant::now() + interval;
                    self.read_prometheus(now).await
                }
            } else {
                self.read_rules(now, true).await
            };
            if let Some(why) = fired {
                live(None);
                report.aborted_at = Some(Dur(now));
                break Err(Stop::Abort(why));
            }
        };
        // What the rules did on each instance, as they stand at the end of the phase.
        let at = seen.started.elapsed();
        let _ = self.read_rules(at, !from_prometheus).await;
        report.injections = self.injection_counts();
        self.note_new_instances(report).await;
        outcome
    }

    /// `observing 3.2s of 10s · order 40 req 0.00% errors p99 3ms · fleet-errors 0.002`
    fn live_line(&self, seen: &Seen, into: Duration) -> String {
        let mut line = format!(
            "observing {:.1}s of {}",
            into.as_secs_f64(),
            self.x.method.duration
        );
        for (i, p) in self.x.steady_state.probes.iter().enumerate() {
            let f = figures(seen.of(i).into_iter().filter(|s| s.phase == Phase::Inject));
            line.push_str(&format!(
                " · {} {} req {:.2}% errors p99 {}",
                p.name,
                f.requests,
                f.error_rate * 100.0,
                f.p99.map_or("-".into(), |d| d.to_string())
            ));
        }
        for (i, q) in self.x.steady_state.queries.iter().enumerate() {
            let last = seen.evals(i).last().and_then(|e| e.outcome.value());
            line.push_str(&format!(
                " · {} {}",
                q.name,
                last.map_or("-".into(), |v| format!("{v:.4}"))
            ));
        }
        line
    }
}

/// A line on standard error about where the run is.
pub(super) fn progress(what: &str) {
    eprintln!("{} {what}", bold("…"));
}

/// The live progress line on a terminal's standard error, rewritten in place; `None`
/// clears it. Nothing when standard error is not a terminal (a log, a CI job).
fn live(line: Option<&str>) {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if !err.is_terminal() {
        return;
    }
    let _ = match line {
        Some(l) => write!(err, "\r\x1b[2K{l}"),
        None => write!(err, "\r\x1b[2K"),
    };
    let _ = err.flush();
}
