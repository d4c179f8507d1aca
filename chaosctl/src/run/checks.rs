//! What judges a run, as one kind of thing: a check is a probe (a stream of canary
//! requests, judged by its error rate and p99) or a query (PromQL evaluated by Prometheus
//! every interval, judged by its value). Both are recorded per phase, judged against the
//! steady state's tolerances, and watched by the abort conditions.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::rules::Dur;
use reqwest::Method;
use serde::Serialize;

use crate::experiment_file::{AbortWhen, Bound, Experiment, Probe, QueryCheck, status_class};
use crate::prom::{Answer, Prometheus};

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

/// A probe's figures over some samples.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Figures {
    pub(super) requests: usize,
    pub(super) errors: usize,
    pub(super) error_rate: f64,
    pub(super) p99: Option<Dur>,
}

pub(super) fn figures(samples: impl Iterator<Item = Sample>) -> Figures {
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
pub(super) fn within(p: &Probe, f: &Figures) -> Result<(), String> {
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

/// Why the checks of a phase do not hold.
#[derive(Debug)]
pub(super) enum Broke {
    /// A check is out of tolerance: the reason.
    Tolerance(String),
    /// A query could not be judged at all (Prometheus unreachable, a query refused).
    Blind(String),
}

/// A query's figures over one phase, for the report.
#[derive(Clone, Debug, Serialize)]
pub(super) struct QueryFigures {
    pub(super) evaluations: usize,
    /// Evaluations that gave no data (no series, NaN) or failed.
    pub(super) unjudged: usize,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) last: Option<f64>,
    /// Evaluations out of tolerance.
    pub(super) breaches: usize,
}

pub(super) fn query_figures(q: &QueryCheck, evals: &[Eval]) -> QueryFigures {
    let bound = q.bound();
    let mut f = QueryFigures {
        evaluations: evals.len(),
        unjudged: 0,
        min: None,
        max: None,
        last: None,
        breaches: 0,
    };
    for e in evals {
        let mut any = false;
        let mut broke = false;
        for (_, v) in e.outcome.numbers() {
            any = true;
            f.min = Some(f.min.map_or(v, |m: f64| m.min(v)));
            f.max = Some(f.max.map_or(v, |m: f64| m.max(v)));
            broke |= !bound.holds(v);
        }
        if any {
            f.last = e.outcome.value();
        } else {
            f.unjudged += 1;
        }
        f.breaches += usize::from(broke);
    }
    f
}

/// The first series of an evaluation out of `bound`, as `0.034` or `0.034 at {instance=...}`.
fn breach_of(e: &Eval, bound: &Bound) -> Option<String> {
    e.outcome
        .numbers()
        .find(|(_, v)| !bound.holds(*v))
        .map(|(l, v)| {
            if l.is_empty() {
                format!("{v}")
            } else {
                format!("{v} at {l}")
            }
        })
}

/// Whether every query held at every evaluation of `phase` (`last_only`: at its last
/// evaluation, for recovery: a query whose series ended with the rules has no data there,
/// and is not judged); the first reason when not.
pub(super) fn queries_hold(
    x: &Experiment,
    seen: &Seen,
    phase: Phase,
    last_only: bool,
) -> Result<(), Broke> {
    for (i, q) in x.steady_state.queries.iter().enumerate() {
        let evals: Vec<Eval> = seen
            .evals(i)
            .into_iter()
            .filter(|e| e.phase == phase)
            .collect();
        if let Some(Eval {
            outcome: Outcome::Failed(why),
            ..
        }) = evals
            .iter()
            .find(|e| matches!(e.outcome, Outcome::Failed(_)))
        {
            return Err(Broke::Blind(format!("query `{}`: {why}", q.name)));
        }
        let to_judge: Vec<&Eval> = if last_only {
            evals.last().into_iter().collect()
        } else {
            evals.iter().collect()
        };
        let bound = q.bound();
        for e in to_judge {
            if let Some(v) = breach_of(e, &bound) {
                return Err(Broke::Tolerance(format!(
                    "query `{}` was {v} at {} (tolerance {bound})",
                    q.name,
                    Dur(round(e.at))
                )));
            }
        }
    }
    Ok(())
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64 / 100 * 100)
}

/// The first query abort condition that holds at `now` (`from`: when the inject phase
/// began): out of range at every evaluation for at least `for` (two evaluations at the
/// least, never one sample), or blind (no data for longer than `for`, or Prometheus
/// failing).
pub(super) fn query_abort(
    x: &Experiment,
    seen: &Seen,
    now: Duration,
    from: Duration,
) -> Option<String> {
    for (i, q) in x.steady_state.queries.iter().enumerate() {
        let evals: Vec<Eval> = seen
            .evals(i)
            .into_iter()
            .filter(|e| e.phase == Phase::Inject && e.at >= from)
            .collect();
        if let Some(Eval {
            outcome: Outcome::Failed(why),
            ..
        }) = evals.last()
        {
            return Some(format!(
                "the judge is blind: query `{}` cannot be evaluated: {why}",
                q.name
            ));
        }
        for a in x
            .abort
            .iter()
            .filter(|a| a.query.as_deref() == Some(&q.name))
        {
            if let Some(why) = condition(q, a, &evals, now) {
                return Some(why);
            }
        }
    }
    None
}

/// Whether one query abort condition holds at `now` over the inject phase's evaluations.
fn condition(q: &QueryCheck, a: &AbortWhen, evals: &[Eval], now: Duration) -> Option<String> {
    let bound = a.bound();
    let during = a.during.0;
    // The trailing run of evaluations where the condition holds.
    let holds = |e: &Eval| e.outcome.numbers().any(|(_, v)| bound.holds(v));
    let streak: Vec<&Eval> = evals.iter().rev().take_while(|e| holds(e)).collect();
    if let Some(first) = streak.last()
        && streak.len() >= 2
        && now.saturating_sub(first.at) >= during
    {
        let last = streak[0];
        let v = last
            .outcome
            .numbers()
            .find(|(_, v)| bound.holds(*v))
            .map_or_else(String::new, |(l, v)| {
                if l.is_empty() {
                    format!("{v}")
                } else {
                    format!("{v} at {l}")
                }
            });
        return Some(format!(
            "abort condition: query `{}` was {bound} for {} ({} evaluations; last {v})",
            q.name,
            a.during,
            streak.len()
        ));
    }
    // A blind judge stops the experiment: no data for longer than `for`.
    let blind: Vec<&Eval> = evals
        .iter()
        .rev()
        .take_while(|e| matches!(e.outcome, Outcome::NoData(_)))
        .collect();
    if let Some(first) = blind.last()
        && blind.len() >= 2
        && now.saturating_sub(first.at) > during
    {
        let why = match blind[0].outcome {
            Outcome::NoData(why) => why,
            _ => "no data",
        };
        return Some(format!(
            "the judge is blind: query `{}` has had no data ({why}) for longer than {} (its abort condition's `for`)",
            q.name, a.during
        ));
    }
    None
}

/// Whether a PromQL expression is an aggregation at its top (`sum by (instance) (...)`),
/// whose several series are each judged.
fn is_aggregate(q: &str) -> bool {
    const OPS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let q = q.trim_start().to_ascii_lowercase();
    OPS.iter().any(|op| {
        q.strip_prefix(op)
            .is_some_and(|rest| rest.trim_start().starts_with(['(', 'b', 'w']))
    })
}

/// What Prometheus's answer to `query` gives to judge: one value; each series of an
/// aggregate `by`; no data (no series, NaN); or a failure (an error, several series of a
/// query that does not aggregate them).
fn outcome(query: &str, answer: Result<Answer, String>) -> Outcome {
    match answer {
        Err(e) => Outcome::Failed(e),
        Ok(Answer::Nothing) => Outcome::NoData("no series"),
        Ok(Answer::One(_, v)) if v.is_nan() => Outcome::NoData("NaN"),
        Ok(Answer::One(_, v)) => Outcome::Values(vec![(String::new(), v)]),
        Ok(Answer::Several(series)) if is_aggregate(query) => {
            if series.iter().all(|(_, v)| v.is_nan()) {
                Outcome::NoData("NaN")
            } else {
                Outcome::Values(series)
            }
        }
        Ok(Answer::Several(series)) => Outcome::Failed(format!(
            "it answered {} series ({}), where one value is judged: aggregate them (sum, max, avg, ...), or aggregate `by` a label to judge each",
            series.len(),
            series
                .iter()
                .take(4)
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Evaluates every query once now, into `seen` under the current phase.
pub(super) async fn evaluate(x: &Experiment, prom: &Prometheus, seen: &Seen) {
    let asked = x
        .steady_state
        .queries
        .iter()
        .map(|q| async move { (q, prom.query(&q.query).await) });
    let at = seen.started.elapsed();
    let phase = seen.phase();
    for (i, (q, answer)) in futures_util::future::join_all(asked)
        .await
        .into_iter()
        .enumerate()
    {
        let outcome = outcome(&q.query, answer);
        if seen.stop.load(Ordering::Acquire) {
            return;
        }
        seen.evals[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Eval { at, phase, outcome });
    }
}

/// Evaluates the queries every `interval` until the run stops.
pub(super) async fn watch_queries(
    x: Arc<Experiment>,
    prom: Prometheus,
    interval: Duration,
    seen: Arc<Seen>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !seen.stop.load(Ordering::Acquire) {
        tick.tick().await;
        evaluate(&x, &prom, &seen).await;
    }
}

/// A probe's stream of canary requests, at its rate, until the run stops it.
pub(super) async fn probe(
    p: Probe,
    i: usize,
    scenario: String,
    http: reqwest::Client,
    seen: Arc<Seen>,
) {
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

/// Whether every probe was within tolerance in `phase`; the first reason when not.
pub(super) fn probes_hold(x: &Experiment, seen: &Seen, phase: Phase) -> Result<(), String> {
    for (i, p) in x.steady_state.probes.iter().enumerate() {
        let f = figures(seen.of(i).into_iter().filter(|s| s.phase == phase));
        within(p, &f)?;
    }
    Ok(())
}

/// The first probe abort condition that holds at `now`.
pub(super) fn probe_abort(
    x: &Experiment,
    seen: &Seen,
    now: Duration,
    from: Duration,
) -> Option<String> {
    for a in &x.abort {
        let Some(name) = &a.probe else { continue };
        let i = x.steady_state.probes.iter().position(|p| p.name == *name)?;
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
                "abort condition: probe `{name}` error rate {:.2}% above {limit} for {}",
                f.error_rate * 100.0,
                a.during
            ));
        }
        if let (Some(limit), Some(p99)) = (a.p99_above, f.p99)
            && p99.0 > limit.0
        {
            return Some(format!(
                "abort condition: probe `{name}` p99 {p99} above {limit} for {}",
                a.during
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_are_told_from_plain_selectors() {
        assert!(is_aggregate("sum by (instance) (rate(x[1m]))"));
        assert!(is_aggregate("  max(rate(x[1m]))"));
        assert!(is_aggregate("count without (pod) (up)"));
        assert!(!is_aggregate("rate(x[1m])"));
        assert!(!is_aggregate("summary_total"));
        assert!(!is_aggregate("up"));
    }

    #[test]
    fn answers_give_one_value_each_series_of_an_aggregate_no_data_or_a_refusal() {
        let one = outcome("sum(x)", Ok(Answer::One(String::new(), 0.5)));
        assert_eq!(one.value(), Some(0.5));
        assert!(matches!(
            outcome("x", Ok(Answer::Nothing)),
            Outcome::NoData("no series")
        ));
        assert!(matches!(
            outcome("x", Ok(Answer::One(String::new(), f64::NAN))),
            Outcome::NoData("NaN")
        ));
        let series = vec![
            ("{instance=\"a\"}".to_owned(), 0.1),
            ("{instance=\"b\"}".to_owned(), 0.9),
        ];
        // An aggregate `by`: each series is judged, a breach on any one counts.
        let by = outcome("max by (instance) (x)", Ok(Answer::Several(series.clone())));
        let bound = Bound {
            below: Some(0.5),
            above: None,
            between: None,
        };
        let e = Eval {
            at: Duration::ZERO,
            phase: Phase::Inject,
            outcome: by,
        };
        assert_eq!(
            breach_of(&e, &bound).as_deref(),
            Some("0.9 at {instance=\"b\"}")
        );
        // Not an aggregate: refused, the series named.
        match outcome("x", Ok(Answer::Several(series))) {
            Outcome::Failed(why) => assert!(
                why.starts_with("it answered 2 series ({instance=\"a\"}, {instance=\"b\"})"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            outcome("x", Err("down".into())),
            Outcome::Failed(_)
        ));
    }

    fn eval(at_ms: u64, v: Option<f64>) -> Eval {
        Eval {
            at: Duration::from_millis(at_ms),
            phase: Phase::Inject,
            outcome: match v {
                Some(v) => Outcome::Values(vec![(String::new(), v)]),
                None => Outcome::NoData("no series"),
            },
        }
    }

    fn check() -> (QueryCheck, AbortWhen) {
        let q: QueryCheck =
            serde_json::from_str(r#"{"name": "errors", "query": "x", "below": 0.01}"#).unwrap();
        let a: AbortWhen =
            serde_json::from_str(r#"{"query": "errors", "above": 0.05, "for": "2s"}"#).unwrap();
        (q, a)
    }

    #[test]
    fn a_condition_fires_only_after_it_held_for_its_for_and_never_on_one_sample() {
        let (q, a) = check();
        let s = Duration::from_millis;
        // One breaching sample, even long after: not enough.
        let one = [eval(0, Some(0.0)), eval(1_000, Some(0.5))];
        assert!(condition(&q, &a, &one, s(10_000)).is_none());
        // Two breaching samples, but not yet for 2s.
        let two = [eval(1_000, Some(0.5)), eval(2_000, Some(0.6))];
        assert!(condition(&q, &a, &two, s(2_900)).is_none());
        let why = condition(&q, &a, &two, s(3_000)).unwrap();
        assert!(
            why.contains("query `errors` was above 0.05 for 2s"),
            "{why}"
        );
        // A good evaluation in between starts the streak again.
        let broken = [
            eval(0, Some(0.5)),
            eval(1_000, Some(0.0)),
            eval(2_000, Some(0.5)),
            eval(3_000, Some(0.5)),
        ];
        assert!(condition(&q, &a, &broken, s(3_500)).is_none());
        assert!(condition(&q, &a, &broken, s(4_000)).is_some());
    }

    #[test]
    fn no_data_for_longer_than_for_is_a_blind_judge() {
        let (q, a) = check();
        let s = Duration::from_millis;
        let blind = [eval(0, Some(0.0)), eval(1_000, None), eval(2_000, None)];
        assert!(
            condition(&q, &a, &blind, s(3_000)).is_none(),
            "2s, not longer"
        );
        let why = condition(&q, &a, &blind, s(3_100)).unwrap();
        assert!(why.starts_with("the judge is blind"), "{why}");
    }
}
