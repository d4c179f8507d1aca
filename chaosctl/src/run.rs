//! `chaosctl run`: an experiment, phase by phase, to a verdict.
//!
//! check → baseline (the steady state must hold before anything is injected) → inject →
//! observe (abort conditions and the rules' guards) → rollback (always: also on abort,
//! error or Ctrl-C) → recovery (the steady state must come back) → report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaos_core::rules::{Dur, Rule};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::experiment_file::{self as experiment, Experiment, Probe, status_class};
use crate::out::{bold, mark, say, table};

/// The outcome of a run, and its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every probe stayed within tolerance while faults were injected.
    Held,
    /// A probe broke: a finding, not a failure of the tool.
    Refuted,
    /// An abort condition or a rule's guard fired.
    Aborted,
    /// The run itself could not be done.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Baseline,
    Inject,
    Recovery,
}

const PHASES: [Phase; 3] = [Phase::Baseline, Phase::Inject, Phase::Recovery];

/// One canary request's outcome.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When it was sent, since the run began.
    at: Duration,
    phase: Phase,
    ok: bool,
    latency: Duration,
}

/// What the probes saw, per probe.
struct Seen {
    started: tokio::time::Instant,
    phase: AtomicU8,
    /// When each phase began.
    marks: Mutex<Vec<PhaseMark>>,
    stop: AtomicBool,
    samples: Vec<Mutex<Vec<Sample>>>,
}

impl Seen {
    fn phase(&self) -> Phase {
        PHASES[self.phase.load(Ordering::Acquire) as usize]
    }

    fn set_phase(&self, p: Phase) {
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

    fn of(&self, probe: usize) -> Vec<Sample> {
        self.samples[probe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A probe's figures over some samples.
#[derive(Clone, Debug, Default, Serialize)]
struct Figures {
    requests: usize,
    errors: usize,
    error_rate: f64,
    p99: Option<Dur>,
}

fn figures(samples: impl Iterator<Item = Sample>) -> Figures {
    let mut lat: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for s in samples {
        lat.push(s.latency);
        errors += usize::from(!s.ok);
    }
    lat.sort_unstable();
    let n = lat.len();
    let p99 = (n > 0).then(|| {
        let i = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
        Dur(lat[i])
    });
    Figures {
        requests: n,
        errors,
        error_rate: if n == 0 {
            0.0
        } else {
            errors as f64 / n as f64
        },
        p99,
    }
}

/// Whether figures are within a probe's tolerance; the reason when not.
fn within(p: &Probe, f: &Figures) -> Result<(), String> {
    if f.requests == 0 {
        return Err(format!("probe `{}` got no answer", p.name));
    }
    let limit = p.tolerance.error_rate_below.fraction();
    if f.error_rate > limit {
        return Err(format!(
            "probe `{}` error rate {:.2}% (tolerance below {})",
            p.name,
            f.error_rate * 100.0,
            p.tolerance.error_rate_below
        ));
    }
    if let (Some(max), Some(p99)) = (p.tolerance.p99_below, f.p99)
        && p99.0 > max.0
    {
        return Err(format!(
            "probe `{}` p99 {p99} (tolerance below {max})",
            p.name
        ));
    }
    Ok(())
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

/// The run's record: everything the report says.
#[derive(Debug, Serialize)]
struct Report {
    title: String,
    hypothesis: String,
    owner: Option<String>,
    scenario: String,
    verdict: Verdict,
    reason: String,
    phases: Vec<PhaseReport>,
    injected: Vec<Injected>,
    recovered: Option<bool>,
    rolled_back: bool,
    rollback_failures: Vec<String>,
    /// When the abort came, since the run began.
    aborted_at: Option<Dur>,
    /// When each phase began.
    phase_marks: Vec<PhaseMark>,
    timeline: Vec<Point>,
    /// The cohorts of the experiment's rules, summed over rules and instances, as the
    /// admin API showed them while the rules were in.
    cohort_timeline: Vec<CohortPoint>,
}

/// Totals of both cohorts at one moment of the run.
#[derive(Clone, Debug, Serialize)]
struct CohortPoint {
    at: Dur,
    experiment: Totals,
    control: Totals,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Totals {
    requests: u64,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct PhaseReport {
    phase: Phase,
    probe: String,
    #[serde(flatten)]
    figures: Figures,
    within_tolerance: bool,
}

#[derive(Debug, Serialize)]
struct Injected {
    admin: String,
    rule: String,
    /// The rule's state and cohorts on that instance when it was last read.
    snapshot: Value,
}

/// When a phase began.
#[derive(Clone, Copy, Debug, Serialize)]
struct PhaseMark {
    phase: Phase,
    at: Dur,
}

/// The width of one timeline point.
const SLICE: Duration = Duration::from_millis(250);

/// A probe's figures over one slice of the run (a quarter second), for the timeline.
#[derive(Debug, Serialize)]
struct Point {
    probe: String,
    /// The slice's start, since the run began.
    at: Dur,
    #[serde(flatten)]
    figures: Figures,
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
    let (x, rules) = match experiment::load(&args.file) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{} {e}", mark("refused", false));
            return Verdict::Error;
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
        return Verdict::Error;
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
    let http = match reqwest::Client::builder().no_proxy().build() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("chaosctl: cannot build the HTTP client: {e}");
            return Verdict::Error;
        }
    };
    let admins: Vec<String> = x
        .method
        .admins
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    let (tx, interrupted) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
        // Kept open, so a wait never mistakes a closed channel for an interruption.
        std::future::pending::<()>().await;
        drop(tx);
    });
    let mut run = Run {
        x: &x,
        interrupted,
        rules,
        scenario,
        admins,
        token,
        http,
        added: Vec::new(),
        last_seen: Vec::new(),
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
    report.verdict
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

struct Run<'a> {
    x: &'a Experiment,
    /// Turns `true` on Ctrl-C (SIGINT), and stays so: no signal is missed between waits.
    interrupted: tokio::sync::watch::Receiver<bool>,
    rules: Vec<Rule>,
    scenario: String,
    admins: Vec<String>,
    token: String,
    http: reqwest::Client,
    /// (admin, rule id) added, to roll back.
    added: Vec<(String, String)>,
    /// The last snapshot of each added rule: (admin, rule id, rule JSON).
    last_seen: Vec<(String, String, Value)>,
    cohorts: Vec<CohortPoint>,
}

/// Why the observation ended early.
enum Stop {
    Abort(String),
    Interrupted,
}

impl Run<'_> {
    async fn admin(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, format!("{url}{path}"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(5));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let res = req
            .send()
            .await
            .map_err(|e| format!("{url}: unreachable: {e}"))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| format!("{url}: {e}"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!(
                "{url}: refused ({status}): {}",
                v["error"]
                    .as_str()
                    .map_or_else(|| v.to_string(), str::to_owned)
            ))
        }
    }

    async fn go(&mut self) -> Report {
        let mut report = Report {
            title: self.x.title.clone(),
            hypothesis: self.x.hypothesis.clone(),
            owner: self.x.owner.clone(),
            scenario: self.scenario.clone(),
            verdict: Verdict::Error,
            reason: String::new(),
            phases: Vec::new(),
            injected: Vec::new(),
            recovered: None,
            rolled_back: true,
            rollback_failures: Vec::new(),
            aborted_at: None,
            phase_marks: Vec::new(),
            timeline: Vec::new(),
            cohort_timeline: Vec::new(),
        };
        // Check: every admin answers, and none has a rule of ours already.
        for a in &self.admins {
            match self.admin(Method::GET, a, "/chaos/rules", None).await {
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
        progress(&format!(
            "scenario {}: watching the steady state for {}",
            self.scenario, self.x.baseline
        ));
        let seen = Arc::new(Seen {
            started: tokio::time::Instant::now(),
            phase: AtomicU8::new(0),
            marks: Mutex::new(vec![PhaseMark {
                phase: Phase::Baseline,
                at: Dur(Duration::ZERO),
            }]),
            stop: AtomicBool::new(false),
            samples: self
                .x
                .steady_state
                .probes
                .iter()
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        });
        let probes: Vec<_> = self
            .x
            .steady_state
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                tokio::spawn(probe(
                    p.clone(),
                    i,
                    self.scenario.clone(),
                    self.http.clone(),
                    seen.clone(),
                ))
            })
            .collect();
        let interrupted = self.wait(self.x.baseline.0).await;
        let outcome = if interrupted {
            Err(Stop::Interrupted)
        } else if let Err(why) = self.steady(&seen, Phase::Baseline) {
            report.reason = format!("not a steady state: {why}");
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
                recovered = Some(self.steady(&seen, Phase::Recovery).is_ok());
            }
        }
        seen.stop.store(true, Ordering::Release);
        for p in probes {
            p.abort();
        }
        report.recovered = recovered;
        report.cohort_timeline = std::mem::take(&mut self.cohorts);
        self.fill(&seen, &mut report);
        let inject_broke = self
            .steady(&seen, Phase::Inject)
            .err()
            .or_else(|| self.cohorts_broke());
        (report.verdict, report.reason) = match outcome {
            Err(Stop::Interrupted) => (Verdict::Error, "interrupted (Ctrl-C); rolled back".into()),
            Err(Stop::Abort(why)) => (Verdict::Aborted, why),
            Ok(false) => (Verdict::Error, std::mem::take(&mut report.reason)),
            Ok(true) => match (inject_broke, recovered) {
                (Some(why), _) => (Verdict::Refuted, format!("during the injection, {why}")),
                (None, Some(false)) => (
                    Verdict::Refuted,
                    format!(
                        "the steady state did not come back: {}",
                        self.steady(&seen, Phase::Recovery)
                            .err()
                            .unwrap_or_default()
                    ),
                ),
                (None, _) => (
                    Verdict::Held,
                    "every probe stayed within tolerance while the faults were injected".into(),
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

    /// `observing 3.2s of 10s · order 40 req 0.00% errors p99 3ms`
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
        line
    }

    /// Whether the experiment's rules' cohorts broke the steady state's cohort tolerance
    /// (as last read while the rules were in); the reason when so.
    fn cohorts_broke(&self) -> Option<String> {
        let t = self.x.steady_state.cohorts.as_ref()?;
        let (mut en, mut ee, mut cn, mut ce) = (0u64, 0u64, 0u64, 0u64);
        for (_, _, r) in &self.last_seen {
            let c = &r["cohorts"];
            en += c["experiment"]["total_requests"].as_u64().unwrap_or(0);
            ee += c["experiment"]["total_errors"].as_u64().unwrap_or(0);
            cn += c["control"]["total_requests"].as_u64().unwrap_or(0);
            ce += c["control"]["total_errors"].as_u64().unwrap_or(0);
        }
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

    /// Whether every probe was within tolerance in `phase`; the first reason when not.
    fn steady(&self, seen: &Seen, phase: Phase) -> Result<(), String> {
        for (i, p) in self.x.steady_state.probes.iter().enumerate() {
            let f = figures(seen.of(i).into_iter().filter(|s| s.phase == phase));
            within(p, &f)?;
        }
        Ok(())
    }

    async fn inject_and_observe(
        &mut self,
        seen: &Arc<Seen>,
        report: &mut Report,
    ) -> Result<(), Stop> {
        for rule in &self.rules.clone() {
            let body = serde_json::to_string(rule).expect("a rule serializes");
            for a in &self.admins.clone() {
                match self
                    .admin(Method::POST, a, "/chaos/rules", Some(body.clone()))
                    .await
                {
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
            self.admins.len(),
            self.x.method.duration
        ));
        let end = tokio::time::Instant::now() + self.x.method.duration.0;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if *self.interrupted.borrow() {
                return Err(Stop::Interrupted);
            }
            let now = seen.started.elapsed();
            if tokio::time::Instant::now() >= end {
                self.read_rules(now).await;
                live(None);
                return Ok(());
            }
            live(Some(&self.live_line(seen, now.saturating_sub(inject_from))));
            if let Some(why) = self.abort_condition(seen, now, inject_from) {
                live(None);
                report.aborted_at = Some(Dur(now));
                self.read_rules(now).await;
                return Err(Stop::Abort(why));
            }
            if let Some(why) = self.read_rules(now).await {
                live(None);
                report.aborted_at = Some(Dur(now));
                return Err(Stop::Abort(why));
            }
        }
    }

    /// The first abort condition that holds at `now`.
    fn abort_condition(&self, seen: &Seen, now: Duration, from: Duration) -> Option<String> {
        for a in &self.x.abort {
            let i = self
                .x
                .steady_state
                .probes
                .iter()
                .position(|p| p.name == a.probe)?;
            if now.saturating_sub(from) < a.during.0 {
                continue;
            }
            let since = now.saturating_sub(a.during.0);
            let f = figures(
                seen.of(i)
                    .into_iter()
                    .filter(|s| s.phase == Phase::Inject && s.at >= since),
            );
            if f.requests < 5 {
                continue;
            }
            if let Some(limit) = a.error_rate_above
                && f.error_rate > limit.fraction()
            {
                return Some(format!(
                    "abort condition: probe `{}` error rate {:.2}% above {limit} for {}",
                    a.probe,
                    f.error_rate * 100.0,
                    a.during
                ));
            }
            if let (Some(limit), Some(p99)) = (a.p99_above, f.p99)
                && p99.0 > limit.0
            {
                return Some(format!(
                    "abort condition: probe `{}` p99 {p99} above {limit} for {}",
                    a.probe, a.during
                ));
            }
        }
        None
    }

    /// Reads our rules on every instance; the first one a guard aborted, if any.
    async fn read_rules(&mut self, at: Duration) -> Option<String> {
        let mut fired = None;
        let mut seen = Vec::new();
        let mut point = CohortPoint {
            at: Dur(at),
            experiment: Totals::default(),
            control: Totals::default(),
        };
        for a in &self.admins {
            let Ok(snap) = self.admin(Method::GET, a, "/chaos/rules", None).await else {
                continue;
            };
            for r in snap["rules"].as_array().into_iter().flatten() {
                let id = r["rule"]["id"].as_str().unwrap_or_default();
                if !self.added.iter().any(|(ad, rid)| ad == a && rid == id) {
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
            self.cohorts.push(point);
        }
        fired
    }

    async fn rollback(&mut self, report: &mut Report) {
        let added = std::mem::take(&mut self.added);
        for (a, id) in &added {
            if let Err(e) = self
                .admin(Method::DELETE, a, &format!("/chaos/rules/{id}"), None)
                .await
            {
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
                report.phases.push(PhaseReport {
                    phase,
                    probe: p.name.clone(),
                    within_tolerance: within(p, &f).is_ok(),
                    figures: f,
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
        report.phase_marks = seen.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    }
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

/// A probe's stream of canary requests, at its rate, until the run stops it.
async fn probe(p: Probe, i: usize, scenario: String, http: reqwest::Client, seen: Arc<Seen>) {
    let period = Duration::from_secs_f64(1.0 / p.rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let method = Method::from_bytes(p.method.as_bytes()).unwrap_or(Method::GET);
    let class = status_class(&p.tolerance.status).unwrap_or(2);
    while !seen.stop.load(Ordering::Acquire) {
        tick.tick().await;
        let mut req = http
            .request(method.clone(), &p.url)
            .header("x-chaos", format!("scenario={scenario}"))
            .header("x-test-traffic", "1")
            .timeout(p.timeout.0);
        for (k, v) in &p.headers {
            req = req.header(k, v);
        }
        let seen = seen.clone();
        tokio::spawn(async move {
            let at = seen.started.elapsed();
            let phase = seen.phase();
            let start = tokio::time::Instant::now();
            let ok = match req.send().await {
                Ok(res) => {
                    let good = res.status().as_u16() / 100 == class;
                    // The whole answer counts: a body fault shows as an error here.
                    res.bytes().await.is_ok() && good
                }
                Err(_) => false,
            };
            let s = Sample {
                at,
                phase,
                ok,
                latency: start.elapsed(),
            };
            if !seen.stop.load(Ordering::Acquire) {
                seen.samples[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(s);
            }
        });
    }
}

fn print_report(r: &Report, json_out: bool) {
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
    say!();
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
            format!("{:?}", p.phase).to_lowercase(),
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
    if !r.injected.is_empty() {
        say!();
        let mut rows = vec![
            [
                "RULE",
                "ADMIN",
                "STATE",
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
            rows.push(vec![
                i.rule.clone(),
                i.admin.clone(),
                s["state"].as_str().unwrap_or("-").to_owned(),
                s["counters"]["injected"].to_string(),
                c("experiment"),
                c("control"),
                s["guard"].as_str().unwrap_or("-").to_owned(),
            ]);
        }
        table(&rows);
    }
    say!();
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

/// One JUnit test case per probe: a failure when it broke tolerance while faults were in
/// or did not recover, or when the run was aborted or could not be done.
fn junit(r: &Report, x: &Experiment) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut cases = String::new();
    let mut failures = 0;
    for p in &x.steady_state.probes {
        let broke: Vec<_> = r
            .phases
            .iter()
            .filter(|ph| ph.probe == p.name && !ph.within_tolerance)
            .map(|ph| format!("{:?}", ph.phase).to_lowercase())
            .collect();
        let failure = match r.verdict {
            Verdict::Held => None,
            _ if !broke.is_empty() => Some(format!(
                "out of tolerance in {}: {}",
                broke.join(", "),
                r.reason
            )),
            Verdict::Aborted | Verdict::Error => Some(r.reason.clone()),
            Verdict::Refuted => None,
        };
        cases.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"probe {}\">",
            esc(&r.scenario),
            esc(&p.name)
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
        x.steady_state.probes.len()
    )
}
