//! The instances: which they are (listed, or a Prometheus job's targets), what they say of
//! the experiment's rules while they are in (through their admin API or Prometheus), and
//! taking the rules back out.

use std::collections::BTreeMap;
use std::time::Duration;

use chaos_core::rules::{Dur, Mode};
use reqwest::Method;
use serde_json::{Value, json};

use super::report::{CohortPoint, Injected, Injections, Instances, Report, Totals};
use super::{Run, progress};
use crate::admin::route;
use crate::experiment_file::Experiment;
use crate::prom::{Answer, Prometheus};

/// The admin endpoints: as the file lists them, or the active, healthy targets of a
/// Prometheus scrape job (refused when there are none).
pub(super) async fn instances(
    x: &Experiment,
    prom: Option<&Prometheus>,
) -> Result<Instances, String> {
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

impl Run {
    /// Per rule and instance, what it matched and injected (a shadow rule: would have).
    pub(super) fn injection_counts(&self) -> Vec<Injections> {
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
    pub(super) async fn note_new_instances(&self, report: &mut Report) {
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
    pub(super) async fn read_rules(&mut self, at: Duration, cohorts: bool) -> Option<String> {
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
    pub(super) async fn read_prometheus(&mut self, at: Duration) -> Option<String> {
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
            add_by_cohort(&mut point, answer, errors);
        }
        self.cohorts.push(point);
        let aborted = prom
            .query(&format!("sum(chaos_rule_state{{{sel},state=\"aborted\"}})"))
            .await;
        if matches!(aborted, Ok(Answer::One(_, v)) if v > 0.0) {
            return self.read_rules(at, false).await;
        }
        None
    }

    pub(super) async fn rollback(&mut self, report: &mut Report) {
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
}

/// Puts an answer to `sum by (cohort) (...)` into `point`: requests, or `errors`.
fn add_by_cohort(point: &mut CohortPoint, answer: Answer, errors: bool) {
    let series = match answer {
        Answer::Several(s) => s,
        // The cohort a lone series is of is in its labels.
        Answer::One(labels, v) => vec![(labels, v)],
        Answer::Nothing => Vec::new(),
    };
    for (labels, v) in series {
        let t = if labels.contains("cohort=\"experiment\"") {
            &mut point.experiment
        } else if labels.contains("cohort=\"control\"") {
            &mut point.control
        } else {
            continue;
        };
        let n = if v.is_finite() { v as u64 } else { 0 };
        if errors {
            t.errors = n;
        } else {
            t.requests = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cohort_is_read_from_its_label_even_alone() {
        let mut p = CohortPoint {
            at: Dur(Duration::ZERO),
            experiment: Totals::default(),
            control: Totals::default(),
        };
        add_by_cohort(
            &mut p,
            Answer::One("{cohort=\"experiment\"}".into(), 40.0),
            false,
        );
        add_by_cohort(
            &mut p,
            Answer::Several(vec![
                ("{cohort=\"control\"}".into(), 2.0),
                ("{cohort=\"experiment\"}".into(), 3.0),
            ]),
            true,
        );
        assert_eq!((p.experiment.requests, p.experiment.errors), (40, 3));
        assert_eq!((p.control.requests, p.control.errors), (0, 2));
    }
}
