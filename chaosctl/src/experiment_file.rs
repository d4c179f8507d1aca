//! The experiment file: one schema, in YAML, JSON or TOML, validated like rules.
//!
//! ```yaml
//! title: Checkout survives a slow payments service
//! hypothesis: If payments is slow for canary traffic, checkout still answers 2xx in 500ms.
//! owner: team-checkout
//! steady_state:
//!   probes:
//!     - name: checkout
//!       url: http://127.0.0.1:8080/checkout
//!       rate: 20                 # requests per second
//!       tolerance: { status: 2xx, error_rate_below: 1%, p99_below: 500ms }
//! method:
//!   admins: [http://127.0.0.1:9901]
//!   rules:
//!     - { id: payments-slow, point: client, target: payments, fault: { delay: 300ms } }
//!   duration: 10s
//! abort:
//!   - { probe: checkout, error_rate_above: 50%, for: 2s }
//! ```
//!
//! A fleet is judged through Prometheus: `steady_state.queries` (PromQL with a
//! tolerance), `abort` conditions on them, the cohorts read from `/chaos/metrics`, and the
//! admin endpoints found as a scrape job's targets:
//!
//! ```yaml
//! prometheus: { url: http://127.0.0.1:9090, interval: 2s }
//! steady_state:
//!   queries:
//!     - name: fleet-errors
//!       query: sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))
//!       below: 0.01
//! method:
//!   admins_from: { prometheus_job: checkout-admin }
//! abort:
//!   - { query: fleet-errors, above: 0.05, for: 10s }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chaos_core::rules::{Dur, Format, Rate, Rule, RuleSet, parse_document};
use serde::{Deserialize, Serialize};

/// An experiment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Experiment {
    /// What it is called.
    pub(crate) title: String,
    /// The sentence it tests.
    pub(crate) hypothesis: String,
    /// Who runs it.
    #[serde(default)]
    pub(crate) owner: Option<String>,
    /// The scenario its canary requests carry and its rules are scoped to (default: made
    /// from the title and the time).
    #[serde(default)]
    pub(crate) scenario: Option<String>,
    /// What must hold: the probes and their tolerances.
    pub(crate) steady_state: SteadyState,
    /// What is injected, where, for how long.
    pub(crate) method: Method,
    /// When to stop early, besides the rules' own guards.
    #[serde(default)]
    pub(crate) abort: Vec<AbortWhen>,
    /// How long the steady state is watched before anything is injected (default 3s).
    #[serde(default = "three_seconds")]
    pub(crate) baseline: Dur,
    /// How long it is watched after the rollback, to see it come back (default 3s).
    #[serde(default = "three_seconds")]
    pub(crate) recovery: Dur,
    /// The Prometheus that judges the fleet (queries, cohorts) and knows its instances.
    #[serde(default)]
    pub(crate) prometheus: Option<PrometheusSource>,
}

/// Where Prometheus is, and how often it is asked.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrometheusSource {
    pub(crate) url: String,
    /// The environment variable holding a bearer token for it, if it needs one.
    #[serde(default)]
    pub(crate) token_env: Option<String>,
    /// How often each query is evaluated (default 2s).
    #[serde(default = "two_seconds")]
    pub(crate) interval: Dur,
}

fn two_seconds() -> Dur {
    Dur(std::time::Duration::from_secs(2))
}

/// A PromQL instant query and the range its value must stay in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryCheck {
    pub(crate) name: String,
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) below: Option<f64>,
    #[serde(default)]
    pub(crate) above: Option<f64>,
    #[serde(default)]
    pub(crate) between: Option<[f64; 2]>,
}

impl QueryCheck {
    /// The range its value must stay in.
    pub(crate) fn bound(&self) -> Bound {
        Bound {
            below: self.below,
            above: self.above,
            between: self.between,
        }
    }
}

/// Where a value must be: below, above, or between two numbers.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub(crate) struct Bound {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) below: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) above: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) between: Option<[f64; 2]>,
}

impl Bound {
    /// Whether `v` is in the range (every given bound holds).
    pub(crate) fn holds(&self, v: f64) -> bool {
        self.below.is_none_or(|b| v < b)
            && self.above.is_none_or(|a| v > a)
            && self.between.is_none_or(|[lo, hi]| v >= lo && v <= hi)
    }

    fn given(&self) -> bool {
        self.below.is_some() || self.above.is_some() || self.between.is_some()
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.below {
            parts.push(format!("below {b}"));
        }
        if let Some(a) = self.above {
            parts.push(format!("above {a}"));
        }
        if let Some([lo, hi]) = self.between {
            parts.push(format!("between {lo} and {hi}"));
        }
        f.write_str(&parts.join(" and "))
    }
}

fn three_seconds() -> Dur {
    Dur(std::time::Duration::from_secs(3))
}

/// The steady state: probes with tolerances, and the cohorts of the experiment's rules as
/// the admin API of the services under test counts them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SteadyState {
    #[serde(default)]
    pub(crate) probes: Vec<Probe>,
    /// PromQL queries that must hold: in the baseline, while the faults are in, and again
    /// in recovery.
    #[serde(default)]
    pub(crate) queries: Vec<QueryCheck>,
    #[serde(default)]
    pub(crate) cohorts: Option<CohortTolerance>,
}

/// What the experiment's rules' cohorts may show while they are in (summed over the rules
/// and instances): the experiment cohort's user-visible error rate, and how far above the
/// control cohort's it may be.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CohortTolerance {
    #[serde(default)]
    pub(crate) error_rate_below: Option<Rate>,
    #[serde(default)]
    pub(crate) increase_over_control_below: Option<Rate>,
    /// Where the cohorts are read: `admin` (default: every instance's admin API) or
    /// `prometheus` (one query per interval, whatever the number of instances).
    #[serde(default)]
    pub(crate) from: CohortSource,
}

/// Where the cohorts' figures come from.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CohortSource {
    /// Each instance's `GET /chaos/rules`.
    #[default]
    Admin,
    /// `chaos_cohort_*_total` summed over the fleet by Prometheus.
    Prometheus,
}

/// A stream of canary requests, tagged with the experiment's scenario and
/// `x-test-traffic: 1`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Probe {
    pub(crate) name: String,
    #[serde(default = "get")]
    pub(crate) method: String,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Requests per second (default 10).
    #[serde(default = "ten")]
    pub(crate) rate: f64,
    /// Per-request timeout (default 5s): a request that takes longer is an error.
    #[serde(default = "five_seconds")]
    pub(crate) timeout: Dur,
    #[serde(default)]
    pub(crate) tolerance: Tolerance,
}

fn get() -> String {
    "GET".into()
}

fn ten() -> f64 {
    10.0
}

fn five_seconds() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

/// What a probe must see for the steady state to hold.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tolerance {
    /// The status class a good answer has: `2xx` (default), `3xx`, `4xx` or `5xx`.
    #[serde(default = "two_xx")]
    pub(crate) status: String,
    /// Most errors (wrong class, failed, timed out) allowed (default 1%).
    #[serde(default = "one_percent")]
    pub(crate) error_rate_below: Rate,
    /// Highest p99 latency allowed.
    #[serde(default)]
    pub(crate) p99_below: Option<Dur>,
}

impl Default for Tolerance {
    fn default() -> Tolerance {
        Tolerance {
            status: two_xx(),
            error_rate_below: one_percent(),
            p99_below: None,
        }
    }
}

fn two_xx() -> String {
    "2xx".into()
}

fn one_percent() -> Rate {
    Rate::new(0.01).expect("1% is a rate")
}

/// What is injected.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Method {
    /// The admin endpoints of the services under test.
    #[serde(default)]
    pub(crate) admins: Vec<String>,
    /// Or the targets of a Prometheus scrape job (that scrapes `/chaos/metrics`).
    #[serde(default)]
    pub(crate) admins_from: Option<AdminsFrom>,
    /// The rules, inline.
    #[serde(default)]
    pub(crate) rules: Vec<Rule>,
    /// Or a rules file (relative to the experiment file).
    #[serde(default)]
    pub(crate) rules_file: Option<PathBuf>,
    /// How long the rules stay in. A ramp is a rule's own (`ramp`, with a guard to hold
    /// it back): the run watches it climb.
    pub(crate) duration: Dur,
    /// Scope every rule to the experiment's scenario (default `true`): only the canary
    /// requests are touched.
    #[serde(default = "yes")]
    pub(crate) scoped: bool,
}

fn yes() -> bool {
    true
}

/// Where the admin endpoints are found.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminsFrom {
    /// The scrape job whose active, healthy targets are the admin endpoints.
    pub(crate) prometheus_job: String,
}

/// An abort condition: on a probe, over the last `for`, above a threshold; or on a query,
/// out of its range at every evaluation for `for`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbortWhen {
    #[serde(default)]
    pub(crate) probe: Option<String>,
    #[serde(default)]
    pub(crate) error_rate_above: Option<Rate>,
    #[serde(default)]
    pub(crate) p99_above: Option<Dur>,
    /// The name of a steady-state query.
    #[serde(default)]
    pub(crate) query: Option<String>,
    /// The condition holds while the query's value is above this, ...
    #[serde(default)]
    pub(crate) above: Option<f64>,
    /// ... below this, ...
    #[serde(default)]
    pub(crate) below: Option<f64>,
    /// ... or between these.
    #[serde(default)]
    pub(crate) between: Option<[f64; 2]>,
    /// How long it must hold (default 1s).
    #[serde(rename = "for", default = "one_second")]
    pub(crate) during: Dur,
}

impl AbortWhen {
    /// Where a query's value makes the condition hold.
    pub(crate) fn bound(&self) -> Bound {
        Bound {
            below: self.below,
            above: self.above,
            between: self.between,
        }
    }
}

fn one_second() -> Dur {
    Dur(std::time::Duration::from_secs(1))
}

/// Reads and checks an experiment file; the rules it injects come validated. The error
/// names the file, and the position or field.
pub(crate) fn load(path: &Path) -> Result<(Experiment, Vec<Rule>), String> {
    let name = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| {
        format!("{name}: unknown format, expected a .json, .toml, .yaml or .yml file")
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let x: Experiment = parse_document(format, &text, Some(&name)).map_err(|e| e.to_string())?;
    let bad = |field: &str, why: String| Err(format!("{name}: field `{field}`: {why}"));
    if x.steady_state.probes.is_empty() && x.steady_state.queries.is_empty() {
        return bad(
            "steady_state",
            "an experiment needs at least one probe or query".into(),
        );
    }
    if let Some(p) = &x.prometheus {
        match reqwest::Url::parse(&p.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return bad(
                    "prometheus.url",
                    format!("`{}` is not an http(s) URL", p.url),
                );
            }
        }
        if p.interval.0 < std::time::Duration::from_millis(100) {
            return bad("prometheus.interval", "evaluate at most every 100ms".into());
        }
    }
    let needs_prometheus = !x.steady_state.queries.is_empty()
        || x.method.admins_from.is_some()
        || x.steady_state
            .cohorts
            .as_ref()
            .is_some_and(|c| c.from == CohortSource::Prometheus);
    if needs_prometheus && x.prometheus.is_none() {
        return bad(
            "prometheus",
            "queries, `admins_from` and cohorts `from: prometheus` need `prometheus: { url: ... }`"
                .into(),
        );
    }
    for (i, q) in x.steady_state.queries.iter().enumerate() {
        let field = |f: &str| format!("steady_state.queries[{i}].{f}");
        if q.query.trim().is_empty() {
            return bad(&field("query"), "the query is empty".into());
        }
        if !q.bound().given() {
            return bad(
                &field("below"),
                "a query needs `below`, `above` or `between: [low, high]`".into(),
            );
        }
        if let Some([lo, hi]) = q.between
            && lo > hi
        {
            return bad(&field("between"), format!("{lo} is above {hi}"));
        }
        if x.steady_state.queries[..i].iter().any(|o| o.name == q.name) {
            return bad(
                &field("name"),
                format!("a query is already called `{}`", q.name),
            );
        }
    }
    for (i, p) in x.steady_state.probes.iter().enumerate() {
        let field = |f: &str| format!("steady_state.probes[{i}].{f}");
        if !(p.rate.is_finite() && p.rate > 0.0 && p.rate <= 1000.0) {
            return bad(
                &field("rate"),
                format!(
                    "rate {} must be above 0 and at most 1000 per second",
                    p.rate
                ),
            );
        }
        match reqwest::Url::parse(&p.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(_) => return bad(&field("url"), format!("`{}` is not an http(s) URL", p.url)),
            Err(e) => return bad(&field("url"), format!("`{}` is not a URL: {e}", p.url)),
        }
        if reqwest::Method::from_bytes(p.method.as_bytes()).is_err() {
            return bad(
                &field("method"),
                format!("`{}` is not an HTTP method", p.method),
            );
        }
        if status_class(&p.tolerance.status).is_none() {
            return bad(
                &field("tolerance.status"),
                format!(
                    "`{}` is not a status class: 2xx, 3xx, 4xx or 5xx",
                    p.tolerance.status
                ),
            );
        }
    }
    if let Some(c) = &x.steady_state.cohorts
        && c.error_rate_below.is_none()
        && c.increase_over_control_below.is_none()
    {
        return bad(
            "steady_state.cohorts",
            "give `error_rate_below` or `increase_over_control_below`".into(),
        );
    }
    for (i, a) in x.abort.iter().enumerate() {
        match (&a.probe, &a.query) {
            (Some(p), None) => {
                if !x.steady_state.probes.iter().any(|x| x.name == *p) {
                    return bad(
                        &format!("abort[{i}].probe"),
                        format!("no probe is called `{p}`"),
                    );
                }
                if a.error_rate_above.is_none() && a.p99_above.is_none() {
                    return bad(
                        &format!("abort[{i}]"),
                        "an abort condition on a probe needs `error_rate_above` or `p99_above`"
                            .into(),
                    );
                }
                if a.bound().given() {
                    return bad(
                        &format!("abort[{i}]"),
                        "`above`, `below` and `between` are for a query".into(),
                    );
                }
            }
            (None, Some(q)) => {
                if !x.steady_state.queries.iter().any(|x| x.name == *q) {
                    return bad(
                        &format!("abort[{i}].query"),
                        format!("no steady-state query is called `{q}`"),
                    );
                }
                if !a.bound().given() {
                    return bad(
                        &format!("abort[{i}]"),
                        "an abort condition on a query needs `above`, `below` or `between`".into(),
                    );
                }
                if a.error_rate_above.is_some() || a.p99_above.is_some() {
                    return bad(
                        &format!("abort[{i}]"),
                        "`error_rate_above` and `p99_above` are for a probe".into(),
                    );
                }
            }
            _ => {
                return bad(
                    &format!("abort[{i}]"),
                    "an abort condition names one `probe` or one `query`".into(),
                );
            }
        }
    }
    match (x.method.admins.is_empty(), &x.method.admins_from) {
        (true, None) => {
            return bad(
                "method.admins",
                "the method needs the admin endpoints of the services under test (`admins`, or `admins_from: { prometheus_job: ... }`)".into(),
            );
        }
        (false, Some(_)) => {
            return bad(
                "method.admins_from",
                "give `admins` or `admins_from`, not both".into(),
            );
        }
        _ => {}
    }
    let mut rules = x.method.rules.clone();
    if let Some(file) = &x.method.rules_file {
        let file = path.parent().unwrap_or(Path::new(".")).join(file);
        rules.extend(RuleSet::from_file(&file).map_err(|e| e.to_string())?.rules);
    }
    if rules.is_empty() {
        return bad(
            "method.rules",
            "the method injects nothing: give `rules` or `rules_file`".into(),
        );
    }
    if x.method.duration.0.is_zero() {
        return bad("method.duration", "a duration of 0s injects nothing".into());
    }
    // The rules as the services will get them, checked as one document.
    let mut set = RuleSet::default();
    set.rules = rules.clone();
    set.validate().map_err(|e| format!("{name}: {e}"))?;
    Ok((x, rules))
}

/// `2xx` → 2.
pub(crate) fn status_class(s: &str) -> Option<u16> {
    match s {
        "2xx" => Some(2),
        "3xx" => Some(3),
        "4xx" => Some(4),
        "5xx" => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = include_str!("../reference-experiment.yaml");

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Every field path of the loaded experiment (list indexes left out), with whether
    /// any entry gives it (not null, not empty).
    fn fields(v: &serde_json::Value, at: &str, out: &mut BTreeMap<String, bool>) {
        let given = match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(m) => !m.is_empty(),
            _ => true,
        };
        *out.entry(at.to_owned()).or_default() |= given;
        match v {
            serde_json::Value::Array(a) => {
                for x in a {
                    fields(x, &format!("{at}[]"), out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    fields(x, &format!("{at}.{k}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_reference_gives_every_field_and_loads_alike_in_yaml_json_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let (x, rules) = load(&write(dir.path(), "reference.yaml", REFERENCE)).unwrap();
        assert_eq!(x.scenario.as_deref(), Some("gameday-7"));
        assert_eq!(x.steady_state.probes[0].rate, 20.0);
        assert_eq!(x.steady_state.probes[0].timeout.to_string(), "2s");
        assert_eq!(x.steady_state.queries[0].between, Some([0.0, 0.01]));
        assert_eq!(
            x.steady_state.cohorts.as_ref().unwrap().from,
            CohortSource::Admin
        );
        assert_eq!(x.abort[1].during.to_string(), "10s");
        assert_eq!(rules.len(), 1);

        // Every field is given somewhere, but those that are another way of saying one
        // given: `admins_from` and `rules_file` (commented out in the file, loaded below)
        // and an abort condition's `between` (a query's is shown).
        let value = serde_json::to_value(&x).unwrap();
        let mut all = BTreeMap::new();
        fields(&value, "", &mut all);
        let gaps: Vec<_> = all
            .iter()
            .filter(|(_, g)| !**g)
            .map(|(f, _)| f.as_str())
            .collect();
        assert_eq!(
            gaps,
            [
                ".abort[].between",
                ".method.admins_from",
                ".method.rules_file"
            ]
        );

        // Its JSON and TOML translations are the same experiment.
        let json = serde_json::to_string_pretty(&x).unwrap();
        let toml = toml::to_string(&x).unwrap();
        for (name, text) in [("reference.json", json), ("reference.toml", toml)] {
            let (back, rules_back) = load(&write(dir.path(), name, &text))
                .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(serde_json::to_value(&back).unwrap(), value, "{name}");
            assert_eq!(rules_back, rules, "{name}");
        }
    }

    #[test]
    fn the_references_alternatives_load_too() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "payments.yaml",
            "rules:\n  - { id: payments-down, point: client, target: payments, fault: { abort: 503 } }\n",
        );
        let text = REFERENCE
            .replace("  admins:  ", "  # admins:")
            .replace(
                "    - http://127.0.0.1:9901",
                "    # - http://127.0.0.1:9901",
            )
            .replace("  # admins_from:  ", "  admins_from:    ")
            .replace("  #   prometheus_job:", "    prometheus_job:")
            .replace("  # rules_file:", "  rules_file:");
        let (x, rules) = load(&write(dir.path(), "alternatives.yaml", &text))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(x.method.admins.is_empty());
        assert_eq!(
            x.method.admins_from.map(|a| a.prometheus_job).as_deref(),
            Some("checkout-admin")
        );
        let ids: Vec<_> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["payments-slow", "payments-down"]);
    }
}
