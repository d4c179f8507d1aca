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
pub(crate) mod value;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

pub use self::error::RulesError;
pub use self::fault::{Abort, AbortKind, BodyFault, Delay, DropKind, ErrorKind, Fault};
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
    #[serde(default)]
    pub defaults: Defaults,
    /// The most injections in flight at once, across all rules and directives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// Limits on headers and on how long a fault may hold a request.
    #[serde(default)]
    pub limits: Limits,
    /// The rules, in order.
    #[serde(default)]
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
    #[serde(default, rename = "match", skip_serializing_if = "Match::is_empty")]
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
    /// Automatic abort when the steady state degrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    /// Progressive blast radius: the rate steps up over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// `inject`, or `shadow` to decide and count without injecting.
    #[serde(default)]
    pub mode: Mode,
}

fn always() -> Rate {
    Rate::ALWAYS
}

fn rule_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    check_id(&id).map_err(de::Error::custom)?;
    Ok(id)
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("rule id `{id}` must be 1 to 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "rule id `{id}` may only hold lowercase letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

fn point_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    if p.is_empty()
        || !p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
    {
        return Err(de::Error::custom(format!(
            "point `{p}` must be `server`, `client`, `sql` or a lowercase name"
        )));
    }
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
    /// A rule with an id, a point and a fault; everything else at its default.
    ///
    /// # Panics
    ///
    /// Panics if `id` is not a valid rule id (see [`Rule::id`]).
    #[track_caller]
    pub fn new(id: impl Into<String>, point: impl Into<String>, fault: Fault) -> Rule {
        let id = id.into();
        if let Err(e) = check_id(&id) {
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
            ramp: None,
            mode: Mode::Inject,
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

    /// Sets the mode.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Rule {
        self.mode = mode;
        self
    }
}

/// Conditions on a request. All that are given must hold.
///
/// ```
/// use chaos_core::rules::{HeaderMatch, Match};
///
/// let m = Match::default()
///     .method(http::Method::POST)
///     .path("/api/checkout/*")
///     .header("x-tenant", HeaderMatch::Glob(chaos_core::rules::Pattern::new("test-*")))
///     .test_traffic(true);
/// assert_eq!(m.method, [http::Method::POST]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Match {
    /// HTTP methods (one or a list).
    #[serde(
        default,
        deserialize_with = "methods",
        serialize_with = "ser_methods",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub method: Vec<Method>,
    /// Path glob; exact when it has no `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Pattern>,
    /// Host glob (case-insensitive), without the port: the host a client calls, or the
    /// `Host` / `:authority` a server was called with.
    #[serde(
        default,
        deserialize_with = "host_pattern",
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<Pattern>,
    /// Header conditions, by header name.
    #[serde(
        default,
        deserialize_with = "header_matches",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, HeaderMatch>,
    /// A scenario tag the request must carry (`x-chaos: scenario=NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Only synthetic traffic (`true`) or only real traffic (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_traffic: Option<bool>,
    /// Statement glob, at the `sql` point (case-insensitive).
    #[serde(
        default,
        deserialize_with = "sql_pattern",
        skip_serializing_if = "Option::is_none"
    )]
    pub sql: Option<Pattern>,
}

impl Match {
    fn is_empty(&self) -> bool {
        self == &Match::default()
    }

    /// Requires this scenario tag.
    #[must_use]
    pub fn scenario(mut self, name: impl Into<String>) -> Match {
        self.scenario = Some(name.into());
        self
    }

    /// Requires this path glob.
    #[must_use]
    pub fn path(mut self, glob: impl Into<String>) -> Match {
        self.path = Some(Pattern::new(glob));
        self
    }

    /// Requires this host glob (case-insensitive, no port).
    #[must_use]
    pub fn host(mut self, glob: impl Into<String>) -> Match {
        self.host = Some(Pattern::case_insensitive(glob));
        self
    }

    /// Requires this statement glob.
    #[must_use]
    pub fn sql(mut self, glob: impl Into<String>) -> Match {
        self.sql = Some(Pattern::case_insensitive(glob));
        self
    }

    /// Requires one of these methods.
    #[must_use]
    pub fn method(mut self, method: Method) -> Match {
        self.method.push(method);
        self
    }

    /// Requires a header condition.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, m: HeaderMatch) -> Match {
        self.headers.insert(name.into().to_ascii_lowercase(), m);
        self
    }

    /// Requires test traffic (or real traffic, with `false`).
    #[must_use]
    pub fn test_traffic(mut self, yes: bool) -> Match {
        self.test_traffic = Some(yes);
        self
    }
}

fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Method>, D::Error> {
    let raw: Vec<String> = value::one_or_many(d)?;
    raw.into_iter()
        .map(|m| {
            let up = m.to_ascii_uppercase();
            Method::from_bytes(up.as_bytes())
                .map_err(|_| de::Error::custom(format!("invalid HTTP method `{m}`")))
        })
        .collect()
}

fn ser_methods<S: Serializer>(m: &[Method], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(Method::as_str))
}

fn sql_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Pattern>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(de::Error::custom("pattern is empty"));
    }
    Ok(Some(Pattern::case_insensitive(s)))
}

fn host_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Pattern>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(de::Error::custom("pattern is empty"));
    }
    if s.contains('/') || (s.contains(':') && !s.starts_with('[')) {
        return Err(de::Error::custom(format!(
            "`{s}` is not a host glob: give the host name alone, without scheme, port or path"
        )));
    }
    Ok(Some(Pattern::case_insensitive(s)))
}

fn header_matches<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, HeaderMatch>, D::Error> {
    let raw = BTreeMap::<String, HeaderMatch>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let lower = k.to_ascii_lowercase();
        if HeaderName::try_from(lower.as_str()).is_err() {
            return Err(de::Error::custom(format!("invalid header name `{k}`")));
        }
        out.insert(lower, v);
    }
    Ok(out)
}

/// A condition on one header.
///
/// In a file: a string (exact, or a glob when it has `*`), or a map with one of
/// `exact`, `glob`, `present: true`, `absent: true`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HeaderMatch {
    /// The value equals this.
    Exact(String),
    /// The value matches this glob.
    Glob(Pattern),
    /// The header is present, with any value.
    Present,
    /// The header is absent.
    Absent,
}

impl<'de> Deserialize<'de> for HeaderMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(String),
            Map(RawMap),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawMap {
            exact: Option<String>,
            glob: Option<String>,
            present: Option<bool>,
            absent: Option<bool>,
        }
        let v = serde_json::Value::deserialize(d)?;
        let raw = Raw::deserialize(v).map_err(|_| {
            de::Error::custom(
                "a header condition is a string or one of `exact`, `glob`, `present: true`, `absent: true`",
            )
        })?;
        Ok(match raw {
            Raw::Plain(s) if s.contains('*') => HeaderMatch::Glob(Pattern::new(s)),
            Raw::Plain(s) => HeaderMatch::Exact(s),
            Raw::Map(m) => match (m.exact, m.glob, m.present, m.absent) {
                (Some(e), None, None, None) => HeaderMatch::Exact(e),
                (None, Some(g), None, None) => HeaderMatch::Glob(Pattern::new(g)),
                (None, None, Some(true), None) => HeaderMatch::Present,
                (None, None, None, Some(true)) => HeaderMatch::Absent,
                _ => {
                    return Err(de::Error::custom(
                        "a header condition has exactly one of `exact`, `glob`, `present: true`, `absent: true`",
                    ));
                }
            },
        })
    }
}

impl Serialize for HeaderMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            HeaderMatch::Exact(e) => m.serialize_entry("exact", e)?,
            HeaderMatch::Glob(g) => m.serialize_entry("glob", g)?,
            HeaderMatch::Present => m.serialize_entry("present", &true)?,
            HeaderMatch::Absent => m.serialize_entry("absent", &true)?,
        }
        m.end()
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

/// Automatic abort when the steady state degrades while the rule runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Guard {
    /// Abort when the organic error rate is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_above: Option<Rate>,
    /// Abort when the organic p99 latency is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_above: Option<Dur>,
    /// The observation window (default 30s).
    #[serde(default = "default_window")]
    pub window: Dur,
}

fn default_window() -> Dur {
    Dur(Duration::from_secs(30))
}

/// Progressive blast radius: the rate takes each step in turn, one per `every`.
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

/// A rules document format.
///
/// ```
/// use std::path::Path;
/// use chaos_core::rules::Format;
/// assert_eq!(Format::from_path(Path::new("rules.yml")), Some(Format::Yaml));
/// assert_eq!(Format::from_path(Path::new("rules.ini")), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON.
    Json,
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

impl Format {
    /// The format a file name implies: `.json`, `.toml`, `.yaml` / `.yml`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
        })
    }
}

// ---- loading ------------------------------------------------------------------------------

impl RuleSet {
    /// Parses and validates a document.
    ///
    /// # Errors
    ///
    /// The first problem found, with its position when the format gives one.
    pub fn parse(format: Format, text: &str) -> Result<RuleSet, RulesError> {
        Self::parse_named(format, text, None)
    }

    /// Reads, parses and validates a file; the format comes from the extension.
    ///
    /// # Errors
    ///
    /// The file cannot be read, has an unknown extension, or is refused; the error names
    /// the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let format = Format::from_path(path).ok_or_else(|| {
            RulesError::io("unknown rules format, expected a .json, .toml, .yaml or .yml file")
                .with_source(name.clone())
        })?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| RulesError::io(format!("cannot read: {e}")).with_source(name.clone()))?;
        Self::parse_named(format, &text, Some(&name))
    }

    pub(crate) fn parse_named(
        format: Format,
        text: &str,
        name: Option<&str>,
    ) -> Result<RuleSet, RulesError> {
        let set = match parse_doc::<RuleSet>(format, text) {
            Ok(set) => set,
            Err((err, path)) => {
                let err = locate_rule(format, text, err, &path);
                return Err(err.with_source(name.unwrap_or("<string>")));
            }
        };
        set.validate()
            .map_err(|e| e.with_source(name.unwrap_or("<string>")))?;
        Ok(set)
    }

    /// Serializes the rules (normalised: durations as `300ms`, rates as `25%`).
    ///
    /// # Errors
    ///
    /// Only if the format cannot express the document (TOML cannot express every shape).
    pub fn to_string(&self, format: Format) -> Result<String, RulesError> {
        match format {
            Format::Json => {
                serde_json::to_string_pretty(self).map_err(|e| RulesError::invalid(e.to_string()))
            }
            Format::Toml => toml::to_string(self).map_err(|e| RulesError::invalid(e.to_string())),
            Format::Yaml => {
                serde_saphyr::to_string(self).map_err(|e| RulesError::invalid(e.to_string()))
            }
        }
    }

    /// Checks what the schema alone cannot: unique ids, ceilings, exclusive fields.
    ///
    /// # Errors
    ///
    /// The first problem, naming the rule and field.
    pub fn validate(&self) -> Result<(), RulesError> {
        let mut ids = HashSet::new();
        if self.limits.max_items == 0 {
            return Err(RulesError::invalid("limits.max_items must be at least 1")
                .with_field("limits.max_items"));
        }
        if self.max_active == Some(0) {
            return Err(RulesError::invalid(
                "max_active 0 would never inject; remove the rules or set kill_switch",
            )
            .with_field("max_active"));
        }
        for r in &self.rules {
            if !ids.insert(r.id.as_str()) {
                return Err(RulesError::invalid(format!("duplicate rule id `{}`", r.id))
                    .with_rule(&r.id)
                    .with_field("id"));
            }
            r.validate(&self.limits)?;
        }
        Ok(())
    }
}

impl Rule {
    /// Checks one rule against the limits.
    ///
    /// # Errors
    ///
    /// The first problem, naming the rule and field.
    pub fn validate(&self, limits: &Limits) -> Result<(), RulesError> {
        let err = |field: &str, reason: String| {
            Err(RulesError::invalid(reason)
                .with_rule(&self.id)
                .with_field(field))
        };
        check_id(&self.id).or_else(|e| err("id", e))?;
        if let Some(max) = self.fault.max_delay()
            && max > limits.max_delay.0
        {
            return err(
                "fault.delay",
                format!(
                    "delay {} is above the ceiling {} (limits.max_delay)",
                    Dur(max),
                    limits.max_delay
                ),
            );
        }
        let schedules = [
            self.sequence.is_some(),
            self.first.is_some(),
            self.every.is_some(),
        ];
        if schedules.iter().filter(|b| **b).count() > 1 {
            return err(
                "sequence",
                "give only one of `sequence`, `first`, `every`".to_owned(),
            );
        }
        if matches!(&self.sequence, Some(s) if s.is_empty()) {
            return err("sequence", "sequence is empty".to_owned());
        }
        if self.every == Some(0) {
            return err("every", "every 0 is not a period; use 1 or more".to_owned());
        }
        if self.ttl.is_some() && self.expires_at.is_some() {
            return err("ttl", "give `ttl` or `expires_at`, not both".to_owned());
        }
        if self.ttl.is_some_and(|t| t.0.is_zero()) {
            return err("ttl", "ttl 0s would expire at once".to_owned());
        }
        if self.max_active == Some(0) {
            return err("max_active", "max_active 0 would never inject".to_owned());
        }
        if let Some(g) = &self.guard
            && g.error_rate_above.is_none()
            && g.p99_above.is_none()
        {
            return err(
                "guard",
                "a guard needs `error_rate_above` or `p99_above`".to_owned(),
            );
        }
        if let Some(r) = &self.ramp {
            if r.steps.is_empty() {
                return err("ramp.steps", "ramp has no steps".to_owned());
            }
            if r.every.0.is_zero() {
                return err("ramp.every", "ramp.every must be above 0s".to_owned());
            }
            if r.steps
                .windows(2)
                .any(|w| w[1].fraction() < w[0].fraction())
            {
                return err("ramp.steps", "ramp steps must not go down".to_owned());
            }
        }
        if self.matcher.sql.is_some() && self.point != "sql" {
            return err(
                "match.sql",
                format!(
                    "`match.sql` applies at the `sql` point, not `{}`",
                    self.point
                ),
            );
        }
        if let Fault::Body(_) = self.fault
            && self.point == "sql"
        {
            return err(
                "fault.body",
                "body faults apply to HTTP points, not `sql`".to_owned(),
            );
        }
        if let Some(s) = &self.matcher.scenario {
            crate::context::check_scenario(s).or_else(|e| err("match.scenario", e))?;
        }
        Ok(())
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the position is reported apart.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn toml_error(text: &str, e: &toml::de::Error, syntax: bool) -> RulesError {
    let mut err = if syntax {
        RulesError::syntax(e.message().trim())
    } else {
        RulesError::invalid(e.message().trim())
    };
    if let Some(span) = e.span() {
        let (l, c) = line_col(text, span.start);
        err = err.with_position(l, c);
    }
    err
}

fn yaml_error(e: &serde_saphyr::Error) -> RulesError {
    use serde_saphyr::Error as E;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let reason = match inner {
        E::Message { msg, .. } => msg.clone(),
        other => {
            let s = other.without_snippet().to_string();
            match s.rfind(" at line ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    };
    let schema = matches!(
        inner,
        E::Message { .. }
            | E::Unexpected { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::SerdeInvalidLength { .. }
            | E::SerdeUnknownVariant { .. }
            | E::SerdeUnknownField { .. }
            | E::SerdeMissingField { .. }
            | E::DuplicateMappingKey { .. }
    );
    let mut err = if schema {
        RulesError::invalid(reason)
    } else {
        RulesError::syntax(reason)
    };
    if let Some(loc) = e.location()
        && loc.line() > 0
    {
        err = err.with_position(loc.line() as usize, loc.column() as usize);
    }
    err
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Rule {
    /// Parses one rule, as a document of its own (the body of the admin API's
    /// `POST /chaos/rules`). Checks across rules (unique ids, ceilings) happen when it is
    /// added, in [`Chaos::add_rule`](crate::Chaos::add_rule).
    ///
    /// ```
    /// use chaos_core::rules::{Format, Rule};
    /// let rule = Rule::parse(Format::Json, r#"{"id": "a", "point": "server", "fault": {"abort": 503}}"#)?;
    /// assert_eq!(rule.id, "a");
    /// let err = Rule::parse(Format::Json, r#"{"id": "a", "point": "server", "fault": {"abort": 99}}"#).unwrap_err();
    /// assert_eq!(err.field(), Some("fault.abort"));
    /// # Ok::<(), chaos_core::rules::RulesError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The document does not parse as one rule; the error has the position and the field.
    pub fn parse(format: Format, text: &str) -> Result<Rule, RulesError> {
        parse_doc::<Rule>(format, text).map_err(|(err, path)| {
            let err = if path.is_empty() || path == "." {
                err
            } else {
                err.with_field(path)
            };
            err.with_source("<string>")
        })
    }
}

/// Parses a document of any schema type, keeping the position and the path of a failure.
fn parse_doc<T: serde::de::DeserializeOwned>(
    format: Format,
    text: &str,
) -> Result<T, (RulesError, String)> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let json_err = |e: serde_json::Error, path: String| {
                let kind = if e.is_syntax() || e.is_eof() {
                    RulesError::syntax
                } else {
                    RulesError::invalid
                };
                let mut err = kind(json_reason(&e));
                if e.line() > 0 {
                    err = err.with_position(e.line(), e.column());
                }
                (err, path)
            };
            serde_path_to_error::deserialize::<_, T>(&mut de)
                .map_err(|e| {
                    let path = e.path().to_string();
                    json_err(e.into_inner(), path)
                })
                .and_then(|v| de.end().map(|()| v).map_err(|e| json_err(e, String::new())))
        }
        Format::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| (toml_error(text, &e, true), String::new()));
            de.and_then(|de| {
                serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
                    let path = e.path().to_string();
                    (toml_error(text, e.inner(), false), path)
                })
            })
        }
        Format::Yaml => {
            let mut path = String::new();
            let r = serde_saphyr::with_deserializer_from_str(text, |de| {
                serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
                    path = e.path().to_string();
                    e.into_inner()
                })
            });
            r.map_err(|e| (yaml_error(&e), path))
        }
    }
}

/// Turns a serde path (`rules[2].fault.delay`) into the rule's id and the field within it.
fn locate_rule(format: Format, text: &str, err: RulesError, path: &str) -> RulesError {
    let Some(rest) = path.strip_prefix("rules[") else {
        return err.with_field(path);
    };
    let Some((idx, field)) = rest.split_once(']') else {
        return err.with_field(path);
    };
    let field = field.trim_start_matches('.');
    let id = idx
        .parse::<usize>()
        .ok()
        .and_then(|i| rule_id_at(format, text, i));
    let err = match id {
        Some(id) => err.with_rule(id),
        None => err.with_rule(format!("#{}", idx.parse::<usize>().map_or(0, |i| i + 1))),
    };
    err.with_field(field)
}

/// Reads the id of the `i`th rule from a document that failed to load, for error messages.
fn rule_id_at(format: Format, text: &str, i: usize) -> Option<String> {
    let v: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).ok()?,
        Format::Toml => toml::from_str(text).ok()?,
        Format::Yaml => serde_saphyr::from_str(text).ok()?,
    };
    v.get("rules")?
        .get(i)?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}
