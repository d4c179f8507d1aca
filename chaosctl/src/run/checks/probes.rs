//! Probes: streams of canary requests, judged by their error rate and p99.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chaos_core::rules::Dur;
use reqwest::Method;
use serde::Serialize;

use crate::experiment_file::{Experiment, Probe, status_class};

use super::{Phase, Sample, Seen};

/// A probe's figures over some samples.
#[derive(Clone, Debug, Default, Serialize)]
pub(in crate::run) struct Figures {
    pub(in crate::run) requests: usize,
    pub(in crate::run) errors: usize,
    pub(in crate::run) error_rate: f64,
    pub(in crate::run) p99: Option<Dur>,
}

/// The figures of some samples, as the engine's testing helpers count them (an exact p99).
pub(in crate::run) fn figures(samples: impl Iterator<Item = Sample>) -> Figures {
    let f = chaos_core::outcome::Figures::from_samples(samples.map(|s| (s.latency, s.ok)));
    Figures {
        requests: f.requests as usize,
        errors: f.errors as usize,
        error_rate: f.error_rate(),
        p99: f.p99.map(Dur),
    }
}

/// Whether figures are within a probe's tolerance; the reason when not.
pub(in crate::run) fn within(p: &Probe, f: &Figures) -> Result<(), String> {
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

/// A probe's stream of canary requests, at its rate, until the run stops it.
pub(in crate::run) async fn probe(
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
pub(in crate::run) fn probes_hold(x: &Experiment, seen: &Seen, phase: Phase) -> Result<(), String> {
    for (i, p) in x.steady_state.probes.iter().enumerate() {
        let f = figures(seen.of(i).into_iter().filter(|s| s.phase == phase));
        within(p, &f)?;
    }
    Ok(())
}

/// The first probe abort condition that holds at `now`.
pub(in crate::run) fn probe_abort(
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
