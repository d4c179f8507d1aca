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
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaos_core::rules::{Dur, Mode, Rule};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use self::checks::{
    Broke, Outcome, PHASES, Phase, Seen, figures, probes_hold, queries_hold, query_figures, within,
};
use self::report::{
    CheckFailure, CohortPoint, Injected, Injections, Instances, PhaseReport, Point, QueryPhase,
    QueryPoint, Report, SLICE, Totals, junit, print_report,
};
use crate::admin::{AdminClient, route};
use crate::experiment_file::{self as experiment, CohortSource, Experiment};
use crate::out::{bold, mark};
use crate::prom::{Answer, Prometheus};

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
    let instances = match instances(&x, prom.as_ref()).await {
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

/// The admin endpoints: as the file lists them, or the active, healthy targets of a
/// Prometheus scrape job (refused when there are none).
async fn instances(x: &Experiment, prom: Option<&Prometheus>) -> Result<Instances, String> {
    let Some(from) = &x.method.admins_from else {
        let mut admins = x.method.admins.clone();
        crate::admin::normalise(&mut admins)?;
        return Ok(Instances {
            from: "the experiment file".into(),
            admins,
        });
    };
    let prom = prom.ok_or("`admins_from` needs `prometheus`")?;
    let job = &from.prometheus_job;
    let (admins, said) = prom.instances(job).await?;
    progress(&format!("found {said}"));
    Ok(Instances {
        from: format!("Prometheus job `{job}` at {}", prom.url()),
        admins,
    })
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
            instances: std::mem::take(&mut self.instances),
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
        self.instances.admins = report.instances.admins.clone();
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
                self.fill(&seen, &mut report);
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
        self.fill(&seen, &mut report);
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

    /// Why the steady state broke while the faults were in: a probe, a query, or the
    /// cohorts; `None` when it held.
    fn inject_broke(&self, seen: &Seen) -> Option<String> {
        let probe = probes_hold(&self.x, seen, Phase::Inject).err();
        let query = match queries_hold(&self.x, seen, Phase::Inject, false) {
            Err(Broke::Tolerance(why) | Broke::Blind(why)) => Some(why),
            Ok(()) => None,
        };
        probe.or(query).or_else(|| self.cohorts_broke())
    }

    /// Why the steady state did not come back in recovery; `None` when it did.
    fn recovery_broke(&self, seen: &Seen) -> Option<String> {
        if let Err(why) = probes_hold(&self.x, seen, Phase::Recovery) {
            return Some(why);
        }
        match queries_hold(&self.x, seen, Phase::Recovery, true) {
            Err(Broke::Tolerance(why) | Broke::Blind(why)) => Some(why),
            Ok(()) => None,
        }
    }

    /// The reason a run whose rules injected nothing (summed over every instance) has no
    /// verdict, naming per rule what it matched and which targets its point has on the
    /// instances; `None` when something was injected. Also warns of an instance where a
    /// rule injected nothing while others did, and fills the report's injection counts.
    fn injected_nothing(&self, report: &mut Report) -> Option<String> {
        let mut per_rule: BTreeMap<&str, Vec<&Injections>> = BTreeMap::new();
        for i in &report.injections {
            per_rule.entry(i.rule.as_str()).or_default().push(i);
        }
        let total: u64 = report.injections.iter().map(|i| i.injected).sum();
        for (rule, on) in &per_rule {
            let fired: Vec<_> = on.iter().filter(|i| i.injected > 0).collect();
            if !fired.is_empty() {
                for i in on.iter().filter(|i| i.injected == 0) {
                    report.warnings.push(format!(
                        "rule `{rule}` injected nothing on {} (matched {}) while it injected on {} other instance(s)",
                        i.admin, i.matched, fired.len()
                    ));
                }
            }
        }
        if total > 0 {
            return None;
        }
        let reasons: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                let on = per_rule.get(r.id.as_str()).map_or(&[][..], Vec::as_slice);
                let matched: u64 = on.iter().map(|i| i.matched).sum();
                let mut targets: Vec<&str> = self
                    .known
                    .values()
                    .filter_map(|points| points.get(&r.point))
                    .flatten()
                    .map(|t| if t.is_empty() { "(none)" } else { t.as_str() })
                    .collect();
                targets.sort_unstable();
                targets.dedup();
                format!(
                    "rule {} matched {matched} requests on {} instances; targets this point ({}) has seen on them: {}",
                    r.id,
                    on.len().max(self.admins().len()),
                    r.point,
                    if targets.is_empty() {
                        "none".to_owned()
                    } else {
                        targets.join(", ")
                    }
                )
            })
            .collect();
        report.failures.push(CheckFailure {
            check: "injections".into(),
            message: format!(
                "the rules injected nothing, so nothing was tested: {}",
                reasons.join("; ")
            ),
        });
        Some(format!(
            "nothing was injected, so the hypothesis was not tested: {}",
            reasons.join("; ")
        ))
    }

    /// Whether the experiment's rules' cohorts broke the steady state's cohort tolerance
    /// (as last read while the rules were in); the reason when so.
    fn cohorts_broke(&self) -> Option<String> {
        let t = self.x.steady_state.cohorts.as_ref()?;
        let last = self.cohorts.last()?;
        let (en, ee) = (last.experiment.requests, last.experiment.errors);
        let (cn, ce) = (last.control.requests, last.control.errors);
        if en == 0 {
            return None;
        }
        let rate = ee as f64 / en as f64;
        if let Some(max) = t.error_rate_below
            && rate > max.fraction()
        {
            return Some(format!(
                "the experiment cohort's error rate {:.2}% (tolerance below {max})",
                rate * 100.0
            ));
        }
        if let Some(max) = t.increase_over_control_below
            && cn > 0
        {
            let control = ce as f64 / cn as f64;
            if rate - control > max.fraction() {
                return Some(format!(
                    "the experiment cohort's error rate {:.2}% is {:.2} points above control's {:.2}% (tolerance below {max})",
                    rate * 100.0,
                    (rate - control) * 100.0,
                    control * 100.0
                ));
            }
        }
        None
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

    /// Per rule and instance, what it matched and injected (a shadow rule: would have).
    fn injection_counts(&self) -> Vec<Injections> {
        self.last_seen
            .iter()
            .map(|(a, id, v)| {
                let shadow = self
                    .rules
                    .iter()
                    .any(|r| r.id == *id && r.mode == Mode::Shadow);
                let c = &v["counters"];
                Injections {
                    rule: id.clone(),
                    admin: a.clone(),
                    matched: c["matched"].as_u64().unwrap_or(0),
                    injected: c[if shadow { "shadowed" } else { "injected" }]
                        .as_u64()
                        .unwrap_or(0),
                }
            })
            .collect()
    }

    /// Names, as a warning, each instance of the Prometheus job that was not there when
    /// the run began: it was left alone.
    async fn note_new_instances(&self, report: &mut Report) {
        let (Some(prom), Some(from)) = (&self.prom, &self.x.method.admins_from) else {
            return;
        };
        if let Ok((up, down)) = prom.job_targets(&from.prometheus_job).await {
            // Whatever its health: a target not yet scraped is there all the same.
            let now = up.into_iter().chain(down.into_iter().map(|(url, _)| url));
            for a in now.filter(|a| !self.admins().contains(a)) {
                report.warnings.push(format!(
                    "instance {a} appeared in job `{}` during the run and was left alone",
                    from.prometheus_job
                ));
            }
        }
    }

    /// Reads our rules on every instance (and the points and targets each has); the first
    /// rule a guard aborted, if any. `cohorts`: note the cohorts' totals.
    async fn read_rules(&mut self, at: Duration, cohorts: bool) -> Option<String> {
        let mut fired = None;
        let mut seen = Vec::new();
        let mut point = CohortPoint {
            at: Dur(at),
            experiment: Totals::default(),
            control: Totals::default(),
        };
        for a in self.admins().to_vec() {
            let Ok(snap) = self.admin(Method::GET, &a, route::RULES, None).await else {
                continue;
            };
            let mut points: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for k in snap["known_targets"].as_array().into_iter().flatten() {
                if let (Some(p), Some(t)) = (k["point"].as_str(), k["target"].as_str()) {
                    points.entry(p.to_owned()).or_default().push(t.to_owned());
                }
            }
            self.known.insert(a.clone(), points);
            for r in snap["rules"].as_array().into_iter().flatten() {
                let id = r["rule"]["id"].as_str().unwrap_or_default();
                if !self.added.iter().any(|(ad, rid)| *ad == a && rid == id) {
                    continue;
                }
                if r["state"] == "aborted" && fired.is_none() {
                    fired = Some(format!(
                        "rule `{id}` aborted on {a}: {}",
                        r["abort_reason"].as_str().unwrap_or("by its guard")
                    ));
                }
                for (c, t) in [
                    ("experiment", &mut point.experiment),
                    ("control", &mut point.control),
                ] {
                    t.requests += r["cohorts"][c]["total_requests"].as_u64().unwrap_or(0);
                    t.errors += r["cohorts"][c]["total_errors"].as_u64().unwrap_or(0);
                }
                seen.push((a.clone(), id.to_owned(), r.clone()));
            }
        }
        if !seen.is_empty() {
            self.last_seen = seen;
            if cohorts {
                self.cohorts.push(point);
            }
        }
        fired
    }

    /// The cohorts of our rules over the fleet, and whether a guard aborted one, in three
    /// queries to Prometheus whatever the number of instances (the admin API is read only
    /// for the reason of an abort). A failed read leaves the figures as they were.
    async fn read_prometheus(&mut self, at: Duration) -> Option<String> {
        let prom = self.prom.clone()?;
        let ids: Vec<String> = self
            .rules
            .iter()
            .map(|r| r.id.replace('.', "\\\\."))
            .collect();
        let sel = format!("rule=~\"{}\"", ids.join("|"));
        let by_cohort = |metric: &str| format!("sum by (cohort) ({metric}{{{sel}}})");
        let mut point = CohortPoint {
            at: Dur(at),
            experiment: Totals::default(),
            control: Totals::default(),
        };
        for (metric, errors) in [
            ("chaos_cohort_requests_total", false),
            ("chaos_cohort_errors_total", true),
        ] {
            let Ok(answer) = prom.query(&by_cohort(metric)).await else {
                return None;
            };
            let series = match answer {
                Answer::Several(s) => s,
                Answer::One(v) => vec![(String::new(), v)],
                Answer::Nothing => Vec::new(),
            };
            for (labels, v) in series {
                let t = if labels.contains("\"experiment\"") {
                    &mut point.experiment
                } else {
                    &mut point.control
                };
                let n = if v.is_finite() { v as u64 } else { 0 };
                if errors {
                    t.errors = n;
                } else {
                    t.requests = n;
                }
            }
        }
        self.cohorts.push(point);
        let aborted = prom
            .query(&format!("sum(chaos_rule_state{{{sel},state=\"aborted\"}})"))
            .await;
        if matches!(aborted, Ok(Answer::One(v)) if v > 0.0) {
            return self.read_rules(at, false).await;
        }
        None
    }

    async fn rollback(&mut self, report: &mut Report) {
        let added = std::mem::take(&mut self.added);
        for (a, id) in &added {
            if let Err(e) = self.admin(Method::DELETE, a, &route::rule(id), None).await {
                report.rollback_failures.push(format!("`{id}` on {e}"));
            }
        }
        report.injected = self
            .last_seen
            .iter()
            .map(|(a, id, v)| Injected {
                admin: a.clone(),
                rule: id.clone(),
                snapshot: json!({
                    "state": v["state"], "guard": v["guard"], "counters": v["counters"],
                    "cohorts": v["cohorts"], "abort": v["abort"],
                }),
            })
            .collect();
        if report.injected.is_empty() {
            report.injected = added
                .iter()
                .map(|(a, id)| Injected {
                    admin: a.clone(),
                    rule: id.clone(),
                    snapshot: Value::Null,
                })
                .collect();
        }
        self.added = Vec::new();
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

    fn fill(&self, seen: &Seen, report: &mut Report) {
        for phase in PHASES {
            for (i, p) in self.x.steady_state.probes.iter().enumerate() {
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
            for (i, q) in self.x.steady_state.queries.iter().enumerate() {
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
                if !ok
                    && phase != Phase::Baseline
                    && !report.failures.iter().any(|c| c.check == check)
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
                    figures: f,
                    within_tolerance: ok,
                });
            }
        }
        for (i, p) in self.x.steady_state.probes.iter().enumerate() {
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
        for (i, q) in self.x.steady_state.queries.iter().enumerate() {
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
}

fn fmt_num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v}"))
}

/// A line on standard error about where the run is.
fn progress(what: &str) {
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
