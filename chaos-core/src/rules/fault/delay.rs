//! `delay`: fixed, a uniform range, or log-normal from a p50 and a p99.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::rules::value::{format_duration, parse_duration};

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
                    p50: crate::rules::value::Dur,
                    p99: crate::rules::value::Dur,
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
