//! What a rule or directive injects: [`Fault`] and its kinds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::value::{Bytes, format_duration, parse_duration};

/// The fault a rule injects. A rule has exactly one.
///
/// In a rules file this is a map with one key:
///
/// ```yaml
/// fault: { delay: 300ms..800ms }
/// fault: { abort: 503 }
/// fault: { abort: { status: 503, body: '{"error":"busy"}', content_type: application/json } }
/// fault: { abort: "grpc:14" }
/// fault: { drop: reset }
/// fault: { error: sqlstate:40001 }
/// fault: { body: { truncate_after: 1KiB } }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait, then let the work proceed.
    Delay(Delay),
    /// Answer with a synthesized response (HTTP status or gRPC status) instead of doing the work.
    Abort(Abort),
    /// Drop the exchange: reset the connection, or hang until the caller gives up.
    Drop(DropKind),
    /// Fail the work with an error of the given kind (for non-HTTP points such as `sql`).
    Error(ErrorKind),
    /// Let the work proceed but damage the response body.
    Body(BodyFault),
}

impl Fault {
    /// The fault's kind as written in files and headers: `delay`, `abort`, `drop`, `error`, `body`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Fault::Delay(_) => "delay",
            Fault::Abort(_) => "abort",
            Fault::Drop(_) => "drop",
            Fault::Error(_) => "error",
            Fault::Body(_) => "body",
        }
    }

    /// The longest time this fault may make a caller wait, if it waits.
    pub(crate) fn max_delay(&self) -> Option<Duration> {
        match self {
            Fault::Delay(d) => Some(d.max()),
            _ => None,
        }
    }

    /// Parses the short form used by the `x-chaos` header: `key` is `delay`, `abort`, `drop`
    /// or `error` and `value` what follows the `=`.
    pub(crate) fn parse_short(key: &str, value: &str) -> Result<Fault, String> {
        match key {
            "delay" => value.parse().map(Fault::Delay),
            "abort" => value.parse().map(Fault::Abort),
            "drop" => value.parse().map(Fault::Drop),
            "error" => value.parse().map(Fault::Error),
            other => Err(format!(
                "unknown fault `{other}`, expected one of `delay`, `abort`, `drop`, `error`"
            )),
        }
    }

    /// The short form, if the fault has one (`delay=300ms`); body faults and detailed aborts
    /// have none.
    pub(crate) fn short_form(&self) -> Option<(&'static str, String)> {
        match self {
            Fault::Delay(d) => Some(("delay", d.to_string())),
            Fault::Abort(a) if a.is_short() => Some(("abort", a.kind.to_string())),
            Fault::Drop(d) => Some(("drop", d.to_string())),
            Fault::Error(e) => Some(("error", e.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Delay(d) => write!(f, "delay {d}"),
            Fault::Abort(a) => write!(f, "abort {}", a.kind),
            Fault::Drop(d) => write!(f, "drop {d}"),
            Fault::Error(e) => write!(f, "error {e}"),
            Fault::Body(b) => write!(f, "body {b}"),
        }
    }
}

// ---- serde for Fault: a map with exactly one key --------------------------------------------

const FAULT_KEYS: &[&str] = &["delay", "abort", "drop", "error", "body"];

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fault;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with one of `delay`, `abort`, `drop`, `error`, `body`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fault, A::Error> {
                let mut found: Option<(String, Fault)> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let fault = match key.as_str() {
                        "delay" => Fault::Delay(map.next_value()?),
                        "abort" => Fault::Abort(map.next_value()?),
                        "drop" => Fault::Drop(map.next_value()?),
                        "error" => Fault::Error(map.next_value()?),
                        "body" => Fault::Body(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, FAULT_KEYS)),
                    };
                    if let Some((first, _)) = &found {
                        return Err(de::Error::custom(format!(
                            "a rule has exactly one fault, found `{first}` and `{key}`"
                        )));
                    }
                    found = Some((key, fault));
                }
                found.map(|(_, f)| f).ok_or_else(|| {
                    de::Error::custom(
                        "fault is empty, expected one of `delay`, `abort`, `drop`, `error`, `body`",
                    )
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Fault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Fault::Delay(d) => m.serialize_entry("delay", d)?,
            Fault::Abort(a) => m.serialize_entry("abort", a)?,
            Fault::Drop(d) => m.serialize_entry("drop", d)?,
            Fault::Error(e) => m.serialize_entry("error", e)?,
            Fault::Body(b) => m.serialize_entry("body", b)?,
        }
        m.end()
    }
}

// ---- Delay ----------------------------------------------------------------------------------

/// How long a delay fault waits.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Delay {
    /// Always the same: `300ms`.
    Fixed(Duration),
    /// Uniform in `[low, high]`: `100ms..400ms`.
    Range(Duration, Duration),
    /// Log-normal, shaped by its median and 99th percentile: `{ p50: 80ms, p99: 900ms }`.
    LogNormal {
        /// The median delay.
        p50: Duration,
        /// The 99th-percentile delay.
        p99: Duration,
    },
}

/// z-score of the 99th percentile of a standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

impl Delay {
    /// Draws one delay from two uniform `u64`s (only [`Delay::LogNormal`] uses the second).
    pub(crate) fn sample(&self, u1: u64, u2: u64, ceiling: Duration) -> Duration {
        let d = match *self {
            Delay::Fixed(d) => d,
            Delay::Range(lo, hi) => {
                let span = (hi - lo).as_nanos() as f64;
                lo + Duration::from_nanos((unit(u1) * span) as u64)
            }
            Delay::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().max(1e-9).ln();
                let sigma = ((p99.as_secs_f64().max(1e-9)).ln() - mu).max(0.0) / Z99;
                // Box-Muller: one standard normal from two uniforms in (0, 1].
                let a = 1.0 - unit(u1);
                let b = unit(u2);
                let z = (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos();
                let secs = (mu + sigma * z).exp();
                Duration::try_from_secs_f64(secs).unwrap_or(ceiling)
            }
        };
        d.min(ceiling)
    }

    /// The longest delay this can produce (before the ceiling); for log-normal, its p99.
    pub fn max(&self) -> Duration {
        match *self {
            Delay::Fixed(d) => d,
            Delay::Range(_, hi) => hi,
            Delay::LogNormal { p99, .. } => p99,
        }
    }
}

/// A uniform `u64` as a float in `[0, 1)`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl std::str::FromStr for Delay {
    type Err = String;
    fn from_str(s: &str) -> Result<Delay, String> {
        if let Some((lo, hi)) = s.split_once("..") {
            let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
            if lo > hi {
                return Err(format!(
                    "delay range {}..{} is reversed",
                    format_duration(lo),
                    format_duration(hi)
                ));
            }
            Ok(Delay::Range(lo, hi))
        } else {
            parse_duration(s).map(Delay::Fixed)
        }
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Delay::Fixed(d) => f.write_str(&format_duration(d)),
            Delay::Range(lo, hi) => write!(f, "{}..{}", format_duration(lo), format_duration(hi)),
            Delay::LogNormal { p50, p99 } => write!(
                f,
                "p50 {} p99 {}",
                format_duration(p50),
                format_duration(p99)
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Delay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a delay: `300ms`, `100ms..400ms` or `{ p50: 80ms, p99: 900ms }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Delay, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Delay, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Percentiles {
                    p50: super::value::Dur,
                    p99: super::value::Dur,
                }
                let p = Percentiles::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if p.p99.0 < p.p50.0 {
                    return Err(de::Error::custom(format!(
                        "delay p99 {} is below p50 {}",
                        p.p99, p.p50
                    )));
                }
                Ok(Delay::LogNormal {
                    p50: p.p50.0,
                    p99: p.p99.0,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Delay::LogNormal { p50, p99 } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("p50", &format_duration(p50))?;
                m.serialize_entry("p99", &format_duration(p99))?;
                m.end()
            }
            _ => s.collect_str(self),
        }
    }
}

// ---- Abort ----------------------------------------------------------------------------------

/// What an abort answers: an HTTP status or a gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortKind {
    /// An HTTP status, `200..=599`.
    Http(StatusCode),
    /// A gRPC status code, `1..=16` (sent trailers-only with HTTP 200).
    Grpc(u8),
}

impl fmt::Display for AbortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortKind::Http(s) => write!(f, "{}", s.as_u16()),
            AbortKind::Grpc(c) => write!(f, "grpc:{c}"),
        }
    }
}

impl std::str::FromStr for AbortKind {
    type Err = String;
    fn from_str(s: &str) -> Result<AbortKind, String> {
        let s = s.trim();
        if let Some(code) = s.strip_prefix("grpc:") {
            let c: u8 = code
                .parse()
                .map_err(|_| format!("invalid gRPC code `{code}`, expected 1..=16"))?;
            return grpc_code(c);
        }
        let n: u16 = s
            .parse()
            .map_err(|_| format!("invalid abort `{s}`, expected an HTTP status or `grpc:CODE`"))?;
        http_status(n)
    }
}

fn http_status(n: u16) -> Result<AbortKind, String> {
    if !(200..=599).contains(&n) {
        return Err(format!("abort status {n} is outside 200..=599"));
    }
    StatusCode::from_u16(n)
        .map(AbortKind::Http)
        .map_err(|_| format!("abort status {n} is not an HTTP status"))
}

fn grpc_code(c: u8) -> Result<AbortKind, String> {
    match c {
        0 => Err("gRPC code 0 is OK, not a fault".to_owned()),
        1..=16 => Ok(AbortKind::Grpc(c)),
        _ => Err(format!("gRPC code {c} is outside 1..=16")),
    }
}

/// A synthesized answer: status, and optionally a body, content type and headers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Abort {
    /// HTTP status or gRPC code.
    pub kind: AbortKind,
    /// Response body (for gRPC, the `grpc-message`).
    pub body: Option<String>,
    /// `content-type` of the body.
    pub content_type: Option<HeaderValue>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Abort {
    /// An abort with only a status.
    pub fn new(kind: AbortKind) -> Abort {
        Abort {
            kind,
            body: None,
            content_type: None,
            headers: Vec::new(),
        }
    }

    /// An HTTP abort with this status.
    ///
    /// # Panics
    ///
    /// Panics if `status` is outside `200..=599`.
    #[track_caller]
    pub fn http(status: u16) -> Abort {
        Abort::new(http_status(status).expect("valid abort status"))
    }

    /// Adds a body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<String>) -> Abort {
        self.body = Some(body.into());
        self
    }

    fn is_short(&self) -> bool {
        self.body.is_none() && self.content_type.is_none() && self.headers.is_empty()
    }
}

impl std::str::FromStr for Abort {
    type Err = String;
    fn from_str(s: &str) -> Result<Abort, String> {
        s.parse().map(Abort::new)
    }
}

impl<'de> Deserialize<'de> for Abort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Abort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an abort: `503`, `grpc:14` or `{ status: 503, body: ... }`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Abort, E> {
                let n = u16::try_from(v)
                    .map_err(|_| E::custom(format!("abort status {v} is outside 200..=599")))?;
                http_status(n).map(Abort::new).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Abort, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("abort status {v} is outside 200..=599"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Abort, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Abort, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Raw {
                    status: Option<u16>,
                    grpc: Option<u8>,
                    body: Option<String>,
                    content_type: Option<String>,
                    #[serde(default)]
                    headers: BTreeMap<String, String>,
                }
                let r = Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let kind = match (r.status, r.grpc) {
                    (Some(s), None) => http_status(s),
                    (None, Some(c)) => grpc_code(c),
                    (Some(_), Some(_)) => Err("abort has both `status` and `grpc`".to_owned()),
                    (None, None) => Err("abort needs `status` or `grpc`".to_owned()),
                }
                .map_err(de::Error::custom)?;
                let content_type = r
                    .content_type
                    .map(|c| {
                        HeaderValue::try_from(c.as_str())
                            .map_err(|_| de::Error::custom(format!("invalid content type `{c}`")))
                    })
                    .transpose()?;
                let mut headers = Vec::with_capacity(r.headers.len());
                for (k, v) in r.headers {
                    let name = HeaderName::try_from(k.as_str())
                        .map_err(|_| de::Error::custom(format!("invalid header name `{k}`")))?;
                    let value = HeaderValue::try_from(v.as_str()).map_err(|_| {
                        de::Error::custom(format!("invalid value for header `{k}`"))
                    })?;
                    headers.push((name, value));
                }
                Ok(Abort {
                    kind,
                    body: r.body,
                    content_type,
                    headers,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Abort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_short() {
            return match self.kind {
                AbortKind::Http(st) => s.serialize_u16(st.as_u16()),
                AbortKind::Grpc(_) => s.collect_str(&self.kind),
            };
        }
        let mut m = s.serialize_map(None)?;
        match self.kind {
            AbortKind::Http(st) => m.serialize_entry("status", &st.as_u16())?,
            AbortKind::Grpc(c) => m.serialize_entry("grpc", &c)?,
        }
        if let Some(b) = &self.body {
            m.serialize_entry("body", b)?;
        }
        // Values came from text, so their bytes are UTF-8 even where they are not visible
        // ASCII (`HeaderValue::to_str` refuses those): written back as read, never blank.
        let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        if let Some(c) = &self.content_type {
            m.serialize_entry("content_type", &text(c))?;
        }
        if !self.headers.is_empty() {
            let h: BTreeMap<&str, String> = self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), text(v)))
                .collect();
            m.serialize_entry("headers", &h)?;
        }
        m.end()
    }
}

// ---- Drop, Error, Body ----------------------------------------------------------------------

macro_rules! string_enum_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// How a drop fault ends the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropKind {
    /// Close the connection (HTTP/2: reset the stream) without an answer.
    Reset,
    /// Never answer: pending until the caller gives up, the kill switch, or `limits.max_hang`.
    Hang,
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            DropKind::Reset => "reset",
            DropKind::Hang => "hang",
        })
    }
}

impl std::str::FromStr for DropKind {
    type Err = String;
    fn from_str(s: &str) -> Result<DropKind, String> {
        match s.trim() {
            "reset" => Ok(DropKind::Reset),
            "hang" => Ok(DropKind::Hang),
            other => Err(format!(
                "unknown drop `{other}`, expected `reset` or `hang`"
            )),
        }
    }
}
string_enum_serde!(DropKind, "`reset` or `hang`");

/// The kind of error an error fault raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The dependency is unreachable (connection refused or broken).
    Unavailable,
    /// The operation timed out.
    Timeout,
    /// A database error with this SQLSTATE, e.g. `40001` (serialization failure).
    SqlState([u8; 5]),
}

impl ErrorKind {
    /// The SQLSTATE, for [`ErrorKind::SqlState`].
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ErrorKind::SqlState(code) => std::str::from_utf8(code).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unavailable => f.pad("unavailable"),
            ErrorKind::Timeout => f.pad("timeout"),
            ErrorKind::SqlState(_) => write!(f, "sqlstate:{}", self.sqlstate().unwrap_or("?????")),
        }
    }
}

impl std::str::FromStr for ErrorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ErrorKind, String> {
        match s.trim() {
            "unavailable" => Ok(ErrorKind::Unavailable),
            "timeout" => Ok(ErrorKind::Timeout),
            other => {
                if let Some(code) = other.strip_prefix("sqlstate:") {
                    let b = code.as_bytes();
                    if b.len() == 5
                        && b.iter()
                            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                    {
                        let mut out = [0u8; 5];
                        out.copy_from_slice(b);
                        return Ok(ErrorKind::SqlState(out));
                    }
                    return Err(format!(
                        "invalid SQLSTATE `{code}`, expected 5 digits or capital letters"
                    ));
                }
                Err(format!(
                    "unknown error kind `{other}`, expected one of `unavailable`, `timeout`, `sqlstate:CODE`"
                ))
            }
        }
    }
}
string_enum_serde!(ErrorKind, "`unavailable`, `timeout` or `sqlstate:CODE`");

/// Damage done to a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFault {
    /// End the body with an error after this many bytes.
    TruncateAfter(u64),
    /// Stop sending (pending forever, until the caller gives up) after this many bytes.
    StallAfter(u64),
    /// Send at most this many bytes per second.
    BytesPerSec(u64),
}

impl fmt::Display for BodyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BodyFault::TruncateAfter(n) => write!(f, "truncate_after {}", Bytes(n)),
            BodyFault::StallAfter(n) => write!(f, "stall_after {}", Bytes(n)),
            BodyFault::BytesPerSec(n) => write!(f, "bytes_per_sec {}", Bytes(n)),
        }
    }
}

impl<'de> Deserialize<'de> for BodyFault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            truncate_after: Option<Bytes>,
            stall_after: Option<Bytes>,
            bytes_per_sec: Option<Bytes>,
        }
        let r: Raw = super::value::map(d)?;
        match (r.truncate_after, r.stall_after, r.bytes_per_sec) {
            (Some(n), None, None) => Ok(BodyFault::TruncateAfter(n.0)),
            (None, Some(n), None) => Ok(BodyFault::StallAfter(n.0)),
            (None, None, Some(n)) if n.0 == 0 => {
                Err(de::Error::custom("bytes_per_sec must be above 0"))
            }
            (None, None, Some(n)) => Ok(BodyFault::BytesPerSec(n.0)),
            _ => Err(de::Error::custom(
                "a body fault has exactly one of `truncate_after`, `stall_after`, `bytes_per_sec`",
            )),
        }
    }
}

impl Serialize for BodyFault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match *self {
            BodyFault::TruncateAfter(n) => m.serialize_entry("truncate_after", &n)?,
            BodyFault::StallAfter(n) => m.serialize_entry("stall_after", &n)?,
            BodyFault::BytesPerSec(n) => m.serialize_entry("bytes_per_sec", &n)?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_round_trip() {
        for (k, v) in [
            ("delay", "300ms"),
            ("delay", "100ms..400ms"),
            ("abort", "503"),
            ("abort", "grpc:14"),
            ("drop", "reset"),
            ("drop", "hang"),
            ("error", "unavailable"),
            ("error", "timeout"),
            ("error", "sqlstate:40001"),
        ] {
            let f = Fault::parse_short(k, v).unwrap();
            assert_eq!(f.short_form(), Some((k, v.to_owned())), "{k}={v}");
        }
    }

    #[test]
    fn delay_sampling_stays_in_bounds() {
        let r = Delay::Range(Duration::from_millis(100), Duration::from_millis(400));
        let ceiling = Duration::from_secs(30);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let d = r.sample(rng.u64(..), rng.u64(..), ceiling);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(400));
        }
        let ln = Delay::LogNormal {
            p50: Duration::from_millis(80),
            p99: Duration::from_millis(900),
        };
        let mut v: Vec<Duration> = (0..20_000)
            .map(|_| ln.sample(rng.u64(..), rng.u64(..), ceiling))
            .collect();
        v.sort();
        let p50 = v[v.len() / 2].as_secs_f64();
        let p99 = v[v.len() * 99 / 100].as_secs_f64();
        assert!((p50 - 0.080).abs() < 0.010, "p50 {p50}");
        assert!((p99 - 0.900).abs() < 0.200, "p99 {p99}");
        assert!(v.iter().all(|d| *d <= ceiling));
    }
}
