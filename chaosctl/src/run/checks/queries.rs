//! Queries: PromQL evaluated by Prometheus every interval, judged by their value.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chaos_core::rules::Dur;
use serde::Serialize;

use crate::experiment_file::{AbortWhen, Bound, Experiment, QueryCheck};
use crate::prom::{Answer, Prometheus};

use super::{Broke, Eval, Outcome, Phase, Seen};

/// A query's figures over one phase, for the report.
#[derive(Clone, Debug, Serialize)]
pub(in crate::run) struct QueryFigures {
    pub(in crate::run) evaluations: usize,
    /// Evaluations that gave no data (no series, NaN) or failed.
    pub(in crate::run) unjudged: usize,
    pub(in crate::run) min: Option<f64>,
    pub(in crate::run) max: Option<f64>,
    pub(in crate::run) last: Option<f64>,
    /// Evaluations out of tolerance.
    pub(in crate::run) breaches: usize,
}

pub(in crate::run) fn query_figures(q: &QueryCheck, evals: &[Eval]) -> QueryFigures {
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
pub(in crate::run) fn queries_hold(
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
pub(in crate::run) fn query_abort(
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
pub(in crate::run) async fn evaluate(x: &Experiment, prom: &Prometheus, seen: &Seen) {
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
pub(in crate::run) async fn watch_queries(
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
