//! `match`: the conditions a request must meet.

use std::collections::BTreeMap;

use http::{HeaderName, Method};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::value::{self, Pattern};

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
    /// Whether no condition is given (the rule matches every request at its point).
    pub fn is_empty(&self) -> bool {
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
        // Only a string or a map: `untagged` would also read a list as the map's fields.
        let shaped = v.is_string() || v.is_object();
        let raw = shaped.then(|| Raw::deserialize(v).ok()).flatten().ok_or_else(|| {
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
