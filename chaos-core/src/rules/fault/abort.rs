//! `abort`: an HTTP status or a gRPC code, with an optional body and headers.

use std::collections::BTreeMap;
use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

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

    pub(super) fn is_short(&self) -> bool {
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
