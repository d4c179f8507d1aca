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
}

fn three_seconds() -> Dur {
    Dur(std::time::Duration::from_secs(3))
}

/// The steady state: probes with tolerances, and the cohorts of the experiment's rules as
/// the admin API of the services under test counts them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SteadyState {
    pub(crate) probes: Vec<Probe>,
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
    pub(crate) admins: Vec<String>,
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

/// An abort condition on a probe: over the last `for`, above a threshold.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbortWhen {
    pub(crate) probe: String,
    #[serde(default)]
    pub(crate) error_rate_above: Option<Rate>,
    #[serde(default)]
    pub(crate) p99_above: Option<Dur>,
    /// How long it must hold (default 1s).
    #[serde(rename = "for", default = "one_second")]
    pub(crate) during: Dur,
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
    if x.steady_state.probes.is_empty() {
        return bad(
            "steady_state.probes",
            "an experiment needs at least one probe".into(),
        );
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
        if !x.steady_state.probes.iter().any(|p| p.name == a.probe) {
            return bad(
                &format!("abort[{i}].probe"),
                format!("no probe is called `{}`", a.probe),
            );
        }
        if a.error_rate_above.is_none() && a.p99_above.is_none() {
            return bad(
                &format!("abort[{i}]"),
                "an abort condition needs `error_rate_above` or `p99_above`".into(),
            );
        }
    }
    if x.method.admins.is_empty() {
        return bad(
            "method.admins",
            "the method needs the admin endpoints of the services under test".into(),
        );
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
