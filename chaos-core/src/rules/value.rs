//! Small validated values shared by rules and headers: durations, rates, byte sizes,
//! timestamps and glob patterns.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Parses a duration such as `250ms`, `1h30m` or `2s`.
///
/// Durations are parsed by [`humantime`]; the units are `ns`, `us`, `ms`, `s`, `m`, `h`, `d`
/// (and their long forms), and several may follow each other (`1h30m`, `1m 30s`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    humantime::parse_duration(s).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

/// Formats a duration the way [`parse_duration`] reads it back (`1h 30m`, `250ms`).
pub(crate) fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(d).to_string()
}

/// A duration in a rules file: `250ms`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `250ms` or `1h30m`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A probability in `[0, 1]`, written `25%` or `0.25`.
///
/// ```
/// use chaos_core::rules::Rate;
/// let r: Rate = "25%".parse().unwrap();
/// assert_eq!(r.fraction(), 0.25);
/// assert_eq!(r.to_string(), "25%");
/// assert_eq!("125%".parse::<Rate>().unwrap_err(), "rate 125% is above 100%");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// Always (100%).
    pub const ALWAYS: Rate = Rate(1.0);
    /// Never (0%).
    pub const NEVER: Rate = Rate(0.0);

    /// A rate from a fraction in `[0, 1]`.
    ///
    /// # Errors
    ///
    /// Returns the reason when `fraction` is NaN or outside `[0, 1]`.
    pub fn new(fraction: f64) -> Result<Rate, String> {
        if fraction.is_nan() {
            return Err("rate is not a number".to_owned());
        }
        if fraction > 1.0 {
            return Err(format!("rate {} is above 100%", percent(fraction)));
        }
        if fraction < 0.0 {
            return Err(format!("rate {} is below 0%", percent(fraction)));
        }
        Ok(Rate(fraction))
    }

    /// The fraction in `[0, 1]`.
    pub fn fraction(self) -> f64 {
        self.0
    }

    /// The threshold a uniform `u64` draw must stay below for the event to happen.
    pub(crate) fn threshold(self) -> u64 {
        if self.0 >= 1.0 {
            u64::MAX
        } else {
            // Exact for every rate a file can express; rounding error is below 2^-53.
            (self.0 * (u64::MAX as f64)) as u64
        }
    }

    /// Whether a uniform draw `x` lands inside this rate.
    #[inline]
    pub(crate) fn admits(self, x: u64) -> bool {
        self.0 >= 1.0 || x < self.threshold()
    }
}

fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round())
    } else {
        format!("{}%", (p * 1e6).round() / 1e6)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&percent(self.0))
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(v: &str) -> Result<Rate, String> {
        let t = v.trim();
        if let Some(p) = t.strip_suffix('%') {
            let n: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid rate `{v}`: expected `25%` or `0.25`"))?;
            Rate::new(n / 100.0).map_err(|_| rate_range_error(n))
        } else {
            let n: f64 = t
                .parse()
                .map_err(|_| format!("invalid rate `{v}`: expected `25%` or `0.25`"))?;
            bare(n)
        }
    }
}

/// A rate written as a bare number: a fraction from 0 to 1. One above 1 was most likely
/// meant as a percentage, so the error says how to write either.
fn bare(n: f64) -> Result<Rate, String> {
    if n > 1.0 {
        return Err(format!(
            "rate {n} is above 1: a bare number is a fraction from 0 to 1; write `25%` or `0.25`"
        ));
    }
    Rate::new(n)
}

fn rate_range_error(percent_value: f64) -> String {
    if percent_value > 100.0 {
        format!("rate {percent_value}% is above 100%")
    } else {
        format!("rate {percent_value}% is below 0%")
    }
}

impl Serialize for Rate {
    /// As a percentage when that reads back as exactly this rate, else as the fraction
    /// (`0.011` is `1.1%` to the eye, but `1.1 / 100` is another `f64`): a document
    /// written out loads back as the same rules.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let nice = percent(self.0);
        if nice.parse::<Rate>().is_ok_and(|r| r.0 == self.0) {
            s.serialize_str(&nice)
        } else {
            s.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as `25%` or `0.25`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                bare(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                bare(v as f64).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                bare(v as f64).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte count in a rules file: `512`, `1KiB`, `4 KB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // bytesize prints `1.0 KiB`, which it also parses back.
        f.pad(&bytesize::ByteSize(self.0).display().iec().to_string())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as `1KiB` or `512`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                v.trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|b| Bytes(b.0))
                    .map_err(|e| E::custom(format!("invalid byte size `{v}`: {e}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("byte size {v} is negative")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time written as RFC 3339 (`2026-11-22T18:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&humantime::format_rfc3339_seconds(self.0).to_string())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time such as `2026-11-22T18:00:00Z`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                humantime::parse_rfc3339_weak(v.trim())
                    .map(Timestamp)
                    .map_err(|e| E::custom(format!("invalid time `{v}`: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A glob over text: `*` matches any run of characters, `?` any one character; a
/// pattern without wildcards matches exactly.
///
/// ```
/// use chaos_core::rules::Pattern;
/// assert!(Pattern::new("/api/checkout/*").matches("/api/checkout/42"));
/// assert!(!Pattern::new("/health").matches("/healthz"));
/// assert!(Pattern::case_insensitive("UPDATE orders*").matches("update orders set paid = true"));
/// ```
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    kind: PatternKind,
}

#[derive(Clone, Debug)]
enum PatternKind {
    Exact {
        case_insensitive: bool,
    },
    Prefix {
        prefix: String,
        case_insensitive: bool,
    },
    Glob(wildmatch::WildMatch),
}

impl Pattern {
    /// A case-sensitive pattern (paths, header values).
    pub fn new(source: impl Into<String>) -> Pattern {
        Self::build(source.into(), false)
    }

    /// A pattern that ignores ASCII case (SQL statements).
    pub fn case_insensitive(source: impl Into<String>) -> Pattern {
        Self::build(source.into(), true)
    }

    fn build(source: String, ci: bool) -> Pattern {
        let wild = |c: char| c == '*' || c == '?';
        let kind = if !source.contains(wild) {
            PatternKind::Exact {
                case_insensitive: ci,
            }
        } else if let Some(prefix) = source.strip_suffix('*').filter(|p| !p.contains(wild)) {
            PatternKind::Prefix {
                prefix: prefix.to_owned(),
                case_insensitive: ci,
            }
        } else if ci {
            PatternKind::Glob(wildmatch::WildMatch::new_case_insensitive(&source))
        } else {
            PatternKind::Glob(wildmatch::WildMatch::new(&source))
        };
        Pattern { source, kind }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The text before the first wildcard (all of it for an exact pattern).
    pub fn literal_prefix(&self) -> &str {
        let end = self.source.find(['*', '?']).unwrap_or(self.source.len());
        &self.source[..end]
    }

    /// Whether the pattern has no wildcard.
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, PatternKind::Exact { .. })
    }

    /// Whether `text` matches. Never allocates.
    #[inline]
    pub fn matches(&self, text: &str) -> bool {
        match &self.kind {
            PatternKind::Exact { case_insensitive } => {
                if *case_insensitive {
                    text.eq_ignore_ascii_case(&self.source)
                } else {
                    text == self.source
                }
            }
            PatternKind::Prefix {
                prefix,
                case_insensitive,
            } => {
                let n = prefix.len();
                text.len() >= n
                    && text.is_char_boundary(n)
                    && if *case_insensitive {
                        text[..n].eq_ignore_ascii_case(prefix)
                    } else {
                        &text[..n] == prefix.as_str()
                    }
            }
            PatternKind::Glob(g) => g.matches(text),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom("pattern is empty"));
        }
        Ok(Pattern::new(s))
    }
}

/// A struct of the schema, read only from a map.
///
/// serde's derived `Deserialize` also takes a sequence for a struct (its fields in order),
/// so `[1, true]` would be a rules document with the kill switch on. Every struct of the
/// schema is read through this instead: anything but a map is refused, with where and why.
pub(crate) struct MapOnly<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = MapOnly<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<MapOnly<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(MapOnly)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// `deserialize_with` for a struct field: a map only (see [`MapOnly`]).
pub(crate) fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    MapOnly::<T>::deserialize(d).map(|m| m.0)
}

/// `deserialize_with` for an optional struct field: a map only.
pub(crate) fn opt_map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    map(d).map(Some)
}

/// `deserialize_with` for a list of structs: a list of maps only.
pub(crate) fn maps<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Vec::<MapOnly<T>>::deserialize(d).map(|v| v.into_iter().map(|m| m.0).collect())
}

/// Deserializes either one value or a list of values.
pub(crate) fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    // `#[serde(untagged)]` would lose the inner message, so pick the shape by hand.
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|i| T::deserialize(i).map_err(de::Error::custom))
            .collect(),
        other => T::deserialize(other)
            .map(|t| vec![t])
            .map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration(&format_duration(Duration::from_millis(5_400_250))).unwrap(),
            Duration::from_millis(5_400_250)
        );
        assert!(
            parse_duration("3x")
                .unwrap_err()
                .starts_with("invalid duration `3x`")
        );
    }

    #[test]
    fn rates() {
        assert_eq!("25%".parse::<Rate>().unwrap().fraction(), 0.25);
        assert_eq!("0.25".parse::<Rate>().unwrap().fraction(), 0.25);
        assert_eq!(
            "125%".parse::<Rate>().unwrap_err(),
            "rate 125% is above 100%"
        );
        assert_eq!(Rate::new(1.5).unwrap_err(), "rate 150% is above 100%");
        assert_eq!("-5%".parse::<Rate>().unwrap_err(), "rate -5% is below 0%");
        // A bare number is a fraction; one above 1 was meant as a percentage, most likely.
        assert_eq!(
            "150".parse::<Rate>().unwrap_err(),
            "rate 150 is above 1: a bare number is a fraction from 0 to 1; write `25%` or `0.25`"
        );
        assert_eq!("1".parse::<Rate>().unwrap(), Rate::ALWAYS);
        assert!(Rate::ALWAYS.admits(u64::MAX));
        assert!(!Rate::NEVER.admits(0));
        assert_eq!(Rate::new(0.125).unwrap().to_string(), "12.5%");
    }

    #[test]
    fn patterns() {
        assert!(Pattern::new("/api/checkout/*").matches("/api/checkout/42"));
        assert!(!Pattern::new("/api/checkout/*").matches("/api/cart"));
        assert!(Pattern::new("/health").matches("/health"));
        assert!(!Pattern::new("/health").matches("/healthz"));
        assert!(Pattern::case_insensitive("UPDATE orders*").matches("update orders set x = 1"));
        assert!(Pattern::new("*-canary-*").matches("eu-canary-3"));
        assert!(!Pattern::new("*-canary-*").matches("eu-stable-3"));
    }
}
