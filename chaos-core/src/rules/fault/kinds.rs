//! `drop`, `error` and `body`: the faults that end or spoil an exchange.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::rules::value::Bytes;

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
        let r: Raw = crate::rules::value::map(d)?;
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
