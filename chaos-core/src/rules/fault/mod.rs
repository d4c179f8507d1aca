//! What a rule or directive injects: [`Fault`] and its kinds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// `Serialize` and `Deserialize` through `Display` and `FromStr`, for the kinds written as
/// one string (`reset`, `sqlstate:40001`); defined before the modules that use it.
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

mod abort;
mod delay;
mod kinds;

pub use self::abort::{Abort, AbortKind};
pub use self::delay::Delay;
pub use self::kinds::{BodyFault, DropKind, ErrorKind};

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
