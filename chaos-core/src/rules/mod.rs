//! The rules schema: one model read from JSON, TOML or YAML, validated as a whole.
//!
//! See the [reference rules file](mod@reference) for every field, with comments.
//!
//! ```
//! use chaos_core::rules::{Format, RuleSet};
//!
//! let rules = RuleSet::parse(Format::Yaml, r#"
//! version: 1
//! rules:
//!   - id: payments-slow
//!     point: client
//!     target: payments
//!     fault: { delay: 300ms..800ms }
//!     rate: 25%
//! "#)?;
//! assert_eq!(rules.rules[0].id, "payments-slow");
//! # Ok::<(), chaos_core::rules::RulesError>(())
//! ```

mod error;
pub(crate) mod fault;
mod load;
mod matcher;
mod validate;
pub(crate) mod value;

use std::time::Duration;

use http::HeaderName;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::names::Name;

pub use self::error::RulesError;
pub use self::fault::{Abort, AbortKind, BodyFault, Delay, DropKind, ErrorKind, Fault};
pub use self::load::{Format, MAX_DOCUMENT_BYTES, parse_document};
pub(crate) use self::load::{bounded_text, read_bounded_bytes};
pub use self::matcher::{HeaderMatch, Match};
pub use self::value::{Bytes, Dur, Pattern, Rate, Timestamp};

/// The reference rules file: every field, documented. It is also parsed by the tests,
/// in YAML, JSON and TOML.
///
/// ```yaml
#[doc = include_str!("../../reference.yaml")]
/// ```
pub mod reference {}

/// The default time to live of a rule when neither the rule nor `defaults.ttl` gives one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A whole rules document: settings and the rules, in order (first match wins).
///
/// See the [module docs](self) for an example and [`mod@reference`] for every field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSet {
    /// Schema version; only `1` exists.
    #[serde(default = "one", deserialize_with = "version")]
    pub version: u32,
    /// `true`: nothing is injected anywhere, at once.
    #[serde(default)]
    pub kill_switch: bool,
    /// Accept per-request directives (`x-chaos: delay=...`) without a signature.
    #[serde(default)]
    pub allow_directives: bool,
    /// Defaults for every rule.
    #[serde(default, deserialize_with = "value::map")]
    pub defaults: Defaults,
    /// The most injections in flight at once, across all rules and directives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// Limits on headers and on how long a fault may hold a request.
    #[serde(default, deserialize_with = "value::map")]
    pub limits: Limits,
    /// The service guard: judges the organic traffic (responses no fault touched) and,
    /// on a breach, aborts every rule and turns the kill switch on.
    #[serde(
        default,
        deserialize_with = "value::opt_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub guard: Option<Guard>,
    /// The rules, in order.
    #[serde(default, deserialize_with = "value::maps")]
    pub rules: Vec<Rule>,
}

fn one() -> u32 {
    1
}

fn version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != 1 {
        return Err(de::Error::custom(format!(
            "unsupported rules version {v}, expected 1"
        )));
    }
    Ok(v)
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            version: 1,
            kill_switch: false,
            allow_directives: false,
            defaults: Defaults::default(),
            max_active: None,
            limits: Limits::default(),
            guard: None,
            rules: Vec::new(),
        }
    }
}

/// Defaults applied to every rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Defaults {
    /// Time to live of rules that give neither `ttl` nor `expires_at` (else one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
}

/// Limits that protect the service from its own chaos and from bad headers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Limits {
    /// Longest `x-chaos` header read; longer ones are ignored whole (default 2048).
    pub max_header_bytes: usize,
    /// Most items read from one `x-chaos` header; the rest are ignored (default 16).
    pub max_items: usize,
    /// Longest delay a rule or directive may inject (default 30s).
    pub max_delay: Dur,
    /// Longest a `drop: hang` or pause holds a request before it is released (default 5m).
    pub max_hang: Dur,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 2048,
            max_items: 16,
            max_delay: Dur(Duration::from_secs(30)),
            max_hang: Dur(Duration::from_secs(300)),
        }
    }
}

impl Limits {
    /// Checks a fault against the delay ceiling (`limits.max_delay`): the one check that
    /// rules and `x-chaos` directives share.
    pub(crate) fn check_delay(&self, fault: &Fault) -> Result<(), String> {
        match fault.max_delay() {
            Some(max) if max > self.max_delay.0 => Err(format!(
                "delay {} is above the ceiling {} (limits.max_delay)",
                Dur(max),
                self.max_delay
            )),
            _ => Ok(()),
        }
    }
}

/// One rule: where it applies, what it matches, what it injects, and its limits.
///
/// Rules come from files (see [`RuleSet::parse`]) or are built in code:
///
/// ```
/// use std::time::Duration;
/// use chaos_core::rules::{Delay, Fault, Match, Rate, Rule};
///
/// let rule = Rule::new("payments-slow", "client", Fault::Delay(Delay::Fixed(Duration::from_millis(300))))
///     .with_target("payments")
///     .with_match(Match::default().scenario("gameday-7"))
///     .with_rate(Rate::new(0.25).unwrap())
///     .with_ttl(Duration::from_secs(1800));
/// assert_eq!(rule.target.as_deref(), Some("payments"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// Unique id: lowercase letters, digits, `-`, `_`, `.`.
    #[serde(deserialize_with = "rule_id")]
    pub id: String,
    /// What the experiment is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The injection point: `server`, `client`, `sql` or any name an application uses.
    #[serde(deserialize_with = "point_name")]
    pub point: String,
    /// The service, dependency or pool name at that point; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Conditions on the request; all given must hold.
    #[serde(
        default,
        rename = "match",
        deserialize_with = "value::map",
        skip_serializing_if = "Match::is_empty"
    )]
    pub matcher: Match,
    /// What to inject.
    pub fault: Fault,
    /// A deterministic script: per scope, the Nth matching request takes the Nth step
    /// (the last step repeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Vec<Step>>,
    /// Shorthand: inject on the first N matching requests of each scope, then pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u32>,
    /// Shorthand: inject on every Nth matching request of each scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u32>,
    /// Probability of injecting, per matching request (default 100%).
    #[serde(default = "always")]
    pub rate: Rate,
    /// Decide by a hash of this header (or `scenario`) instead of a random draw, so the same
    /// key always gets the same decision, and cohorts nest as the rate grows. A request
    /// without the key is never in the cohort.
    #[serde(
        default,
        deserialize_with = "sticky_key",
        skip_serializing_if = "Option::is_none"
    )]
    pub sticky_by: Option<String>,
    /// Most concurrent injections of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// Injections per scope after which the rule retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits: Option<u64>,
    /// Time to live, from when the rule is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
    /// Absolute expiry (instead of `ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Automatic abort when the experiment cohort's outcome degrades (see [`Guard`]).
    #[serde(
        default,
        deserialize_with = "value::opt_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub guard: Option<Guard>,
    /// Error budget: the rule retires once its experiment cohort has produced this many
    /// user-visible errors. Injections wait for the outcomes of those in flight, so the
    /// budget is never overspent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
    /// Progressive blast radius: the rate steps up, while the guard holds.
    #[serde(
        default,
        deserialize_with = "value::opt_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub ramp: Option<Ramp>,
    /// `inject`, or `shadow` to decide and count without injecting.
    #[serde(default)]
    pub mode: Mode,
    /// Installed by a test's guard ([`Chaos::install`](crate::Chaos::install)): with no
    /// `ttl` or `expires_at` of its own, it lives as long as the guard, not `defaults.ttl`.
    #[serde(skip)]
    pub(crate) held: bool,
}

fn always() -> Rate {
    Rate::ALWAYS
}

fn rule_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    Name::RuleId.check(&id).map_err(de::Error::custom)?;
    Ok(id)
}

fn point_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    Name::Point.check(&p).map_err(de::Error::custom)?;
    Ok(p)
}

fn sticky_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let k = String::deserialize(d)?.to_ascii_lowercase();
    if k != "scenario" && HeaderName::try_from(k.as_str()).is_err() {
        return Err(de::Error::custom(format!(
            "sticky_by `{k}` is neither a header name nor `scenario`"
        )));
    }
    Ok(Some(k))
}

impl Rule {
    /// Whether the rule lives as long as a test's guard: installed by one, with no `ttl`
    /// or `expires_at` of its own.
    pub(crate) fn lives_with_guard(&self) -> bool {
        self.held && self.ttl.is_none() && self.expires_at.is_none()
    }

    /// A rule with an id, a point and a fault; everything else at its default.
    ///
    /// # Panics
    ///
    /// Panics if `id` is not a valid rule id (see [`Rule::id`]).
    #[track_caller]
    pub fn new(id: impl Into<String>, point: impl Into<String>, fault: Fault) -> Rule {
        let id = id.into();
        if let Err(e) = Name::RuleId.check(&id) {
            panic!("{e}");
        }
        Rule {
            id,
            description: None,
            point: point.into(),
            target: None,
            matcher: Match::default(),
            fault,
            sequence: None,
            first: None,
            every: None,
            rate: Rate::ALWAYS,
            sticky_by: None,
            max_active: None,
            max_hits: None,
            ttl: None,
            expires_at: None,
            guard: None,
            max_errors: None,
            ramp: None,
            mode: Mode::Inject,
            held: false,
        }
    }

    /// Sets the target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Rule {
        self.target = Some(target.into());
        self
    }

    /// Sets the request conditions.
    #[must_use]
    pub fn with_match(mut self, m: Match) -> Rule {
        self.matcher = m;
        self
    }

    /// Sets the rate.
    #[must_use]
    pub fn with_rate(mut self, rate: Rate) -> Rule {
        self.rate = rate;
        self
    }

    /// Injects on the first `n` matching requests of each scope, then passes.
    #[must_use]
    pub fn with_first(mut self, n: u32) -> Rule {
        self.first = Some(n);
        self
    }

    /// Sets a sequence of steps.
    #[must_use]
    pub fn with_sequence(mut self, steps: Vec<Step>) -> Rule {
        self.sequence = Some(steps);
        self
    }

    /// Sets the concurrency limit.
    #[must_use]
    pub fn with_max_active(mut self, n: u32) -> Rule {
        self.max_active = Some(n);
        self
    }

    /// Sets the per-scope hit limit.
    #[must_use]
    pub fn with_max_hits(mut self, n: u64) -> Rule {
        self.max_hits = Some(n);
        self
    }

    /// Sets the time to live.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Rule {
        self.ttl = Some(Dur(ttl));
        self
    }

    /// Sets the sticky key (a header name, or `scenario`).
    #[must_use]
    pub fn with_sticky_by(mut self, key: impl Into<String>) -> Rule {
        self.sticky_by = Some(key.into().to_ascii_lowercase());
        self
    }

    /// Sets the guard.
    #[must_use]
    pub fn with_guard(mut self, guard: Guard) -> Rule {
        self.guard = Some(guard);
        self
    }

    /// Sets the error budget.
    #[must_use]
    pub fn with_max_errors(mut self, n: u64) -> Rule {
        self.max_errors = Some(n);
        self
    }

    /// Sets the ramp: `steps` in turn, one per `every`.
    #[must_use]
    pub fn with_ramp(mut self, steps: Vec<Rate>, every: Duration) -> Rule {
        self.ramp = Some(Ramp {
            steps,
            every: Dur(every),
        });
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Rule {
        self.mode = mode;
        self
    }
}

/// One step of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Inject the rule's fault. Written `inject`, or the fault's kind (`abort`, `delay`, ...).
    Inject,
    /// Let the request through.
    Pass,
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Step::Inject => "inject",
            Step::Pass => "pass",
        })
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "pass" => Ok(Step::Pass),
            "inject" | "delay" | "abort" | "drop" | "error" | "body" => Ok(Step::Inject),
            other => Err(de::Error::custom(format!(
                "unknown sequence step `{other}`, expected `pass`, `inject` or the fault's kind"
            ))),
        }
    }
}

/// Automatic abort when what a rule does to users goes too far.
///
/// A rule's guard judges its **experiment** cohort (the requests it injected into) by their
/// user-visible outcome, where they left this process, over the last `window`; with
/// `vs_control` it compares them with the **control** cohort (requests it matched and left
/// alone). A breach aborts the rule within a tenth of the window (at most a second). The
/// rules document's top-level `guard` judges the service's organic traffic instead (what no
/// fault touched): a breach aborts every rule and turns the kill switch on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Guard {
    /// Abort when the error rate is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_above: Option<Rate>,
    /// Abort when the 99th percentile latency is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_above: Option<Dur>,
    /// Abort when the experiment cohort does worse than the control cohort (rules only).
    #[serde(
        default,
        deserialize_with = "value::opt_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub vs_control: Option<VsControl>,
    /// No judgement on fewer requests than this in the window, per cohort (default 20).
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// The observation window (default 30s, at most 1h).
    #[serde(default = "default_window")]
    pub window: Dur,
}

impl Guard {
    /// A guard with no condition yet, over `window`, judging from 20 requests.
    pub fn new(window: Duration) -> Guard {
        Guard {
            error_rate_above: None,
            p99_above: None,
            vs_control: None,
            min_requests: default_min_requests(),
            window: Dur(window),
        }
    }

    /// Aborts above this error rate.
    #[must_use]
    pub fn error_rate_above(mut self, rate: Rate) -> Guard {
        self.error_rate_above = Some(rate);
        self
    }

    /// Aborts above this p99 latency.
    #[must_use]
    pub fn p99_above(mut self, p99: Duration) -> Guard {
        self.p99_above = Some(Dur(p99));
        self
    }

    /// Aborts when the experiment cohort diverges from control.
    #[must_use]
    pub fn vs_control(mut self, vs: VsControl) -> Guard {
        self.vs_control = Some(vs);
        self
    }

    /// Judges only windows with at least `n` requests per cohort.
    #[must_use]
    pub fn min_requests(mut self, n: u64) -> Guard {
        self.min_requests = n;
        self
    }
}

/// The experiment cohort compared with the control cohort, as Netflix's ChAP does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VsControl {
    /// Abort when the experiment's error rate is above control's by more than this
    /// (percentage points: `2%` means 0.5% → 2.6% breaches), and by more than chance
    /// explains (a two-proportion z-test at 97.5%, so a small window's luck does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_increase_above: Option<Rate>,
    /// Abort when the experiment's p99 is more than this many times control's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ratio_above: Option<f64>,
}

fn default_window() -> Dur {
    Dur(Duration::from_secs(30))
}

fn default_min_requests() -> u64 {
    20
}

/// Progressive blast radius: the rate takes each step in turn, one per `every`.
///
/// With a guard, a step is left for the next only after a whole `every` in which the guard
/// held and the experiment cohort saw at least `min_requests`; until then the ramp stays
/// (the snapshot says why). Without a guard the steps follow time alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Ramp {
    /// The rates, in order; the last one stays.
    pub steps: Vec<Rate>,
    /// How long each step lasts.
    pub every: Dur,
}

/// Whether a rule injects or only counts what it would inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Inject the fault.
    #[default]
    Inject,
    /// Decide and count "would inject"; inject nothing.
    Shadow,
}
