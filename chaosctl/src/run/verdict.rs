//! What the verdict rests on besides the abort conditions: whether the checks broke while
//! the faults were in or came back after, whether the cohorts stayed within tolerance, and
//! whether anything was injected at all (a run that injected nothing tested nothing).

use std::collections::BTreeMap;

use super::Run;
use super::checks::{Broke, Phase, Seen, probes_hold, queries_hold};
use super::report::{CheckFailure, Injections, Report};

impl Run {
    /// Why the steady state broke while the faults were in: a probe, a query, or the
    /// cohorts; `None` when it held.
    pub(super) fn inject_broke(&self, seen: &Seen) -> Option<String> {
        let probe = probes_hold(&self.x, seen, Phase::Inject).err();
        let query = match queries_hold(&self.x, seen, Phase::Inject, false) {
            Err(Broke::Tolerance(why) | Broke::Blind(why)) => Some(why),
            Ok(()) => None,
        };
        probe.or(query).or_else(|| self.cohorts_broke())
    }

    /// Why the steady state did not come back in recovery; `None` when it did.
    pub(super) fn recovery_broke(&self, seen: &Seen) -> Option<String> {
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
    pub(super) fn injected_nothing(&self, report: &mut Report) -> Option<String> {
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
                    self.admins().len(),
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
    pub(super) fn cohorts_broke(&self) -> Option<String> {
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
}
