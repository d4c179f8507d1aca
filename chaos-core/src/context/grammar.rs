//! The `x-chaos` and `x-test-traffic` header grammar: parsing (strict and lenient) and the
//! canonical form.

use std::fmt;

use crate::names::Name;
use crate::rules::{Fault, Limits, Rate};

/// A parsed `x-chaos` header: scenario tags and directives.
///
/// ```
/// use chaos_core::context::XChaos;
/// use chaos_core::rules::Limits;
///
/// let x = XChaos::parse("scenario=gameday-7, delay=300ms;point=client;target=payments", &Limits::default())?;
/// assert_eq!(x.scenarios, ["gameday-7"]);
/// assert_eq!(x.directives[0].target.as_deref(), Some("payments"));
/// // Formatting gives the canonical value back.
/// assert_eq!(x.to_string(), "scenario=gameday-7, delay=300ms;point=client;target=payments");
///
/// // Lenient parsing skips bad items and says why.
/// let (x, errors) = XChaos::parse_lossy(b"scenario=ok, explode=1", &Limits::default());
/// assert_eq!(x.scenarios, ["ok"]);
/// assert_eq!(errors[0].code(), "unknown_key");
/// # Ok::<(), chaos_core::context::HeaderError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct XChaos {
    /// Scenario tags, in order.
    pub scenarios: Vec<String>,
    /// Per-request fault directives, in order.
    pub directives: Vec<Directive>,
}

/// A per-request fault asked for in `x-chaos`.
///
/// ```
/// use chaos_core::context::Directive;
/// use chaos_core::rules::{Abort, Fault};
/// let d = Directive::new(Fault::Abort(Abort::http(503))).target("orders").hops(2);
/// assert_eq!(d.point_name(), "server");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Directive {
    /// The fault.
    pub fault: Fault,
    /// The point it applies at (`None`: `server`).
    pub point: Option<String>,
    /// The target it applies to (`None`: any).
    pub target: Option<String>,
    /// Probability per matching request.
    pub rate: Rate,
    /// How many services it may reach, this one included (`None`: unlimited, see the grammar).
    pub hops: Option<u32>,
}

impl Directive {
    /// A directive for `fault` at the first server hop.
    pub fn new(fault: Fault) -> Directive {
        Directive {
            fault,
            point: None,
            target: None,
            rate: Rate::ALWAYS,
            hops: None,
        }
    }

    /// Sets the point.
    #[must_use]
    pub fn at(mut self, point: impl Into<String>) -> Directive {
        self.point = Some(point.into());
        self
    }

    /// Sets the target.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Directive {
        self.target = Some(target.into());
        self
    }

    /// Sets the rate.
    #[must_use]
    pub fn rate(mut self, rate: Rate) -> Directive {
        self.rate = rate;
        self
    }

    /// Sets the hop budget.
    #[must_use]
    pub fn hops(mut self, hops: u32) -> Directive {
        self.hops = Some(hops);
        self
    }

    /// The hop budget in force: `hops` as given, or 1 for a bare directive.
    pub(crate) fn effective_hops(&self) -> Option<u32> {
        match (self.hops, &self.point, &self.target) {
            (Some(h), _, _) => Some(h),
            (None, None, None) => Some(1),
            _ => None,
        }
    }

    /// The point name this directive applies at.
    pub fn point_name(&self) -> &str {
        self.point.as_deref().unwrap_or("server")
    }
}

/// An item of an `x-chaos` header that was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError {
    item: String,
    reason: String,
    code: &'static str,
}

impl HeaderError {
    fn new(item: &str, code: &'static str, reason: impl Into<String>) -> HeaderError {
        let mut item = item.to_owned();
        if item.len() > 80 {
            let mut cut = 80;
            while !item.is_char_boundary(cut) {
                cut -= 1;
            }
            item.truncate(cut);
            item.push('…');
        }
        HeaderError {
            item,
            reason: reason.into(),
            code,
        }
    }

    /// The refused item, as written (shortened to 80 bytes).
    pub fn item(&self) -> &str {
        &self.item
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// A short, stable reason for metrics labels: `too_long`, `too_many_items`, `syntax`,
    /// `unknown_key`, `bad_value`, `bad_param`, `above_ceiling`, `not_ascii`,
    /// `bad_test_traffic`, `bad_signature`.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "`{}`: {}", self.item, self.reason)
        }
    }
}

impl std::error::Error for HeaderError {}

impl XChaos {
    /// Parses a header value strictly: the first bad item is an error.
    ///
    /// # Errors
    ///
    /// The first refused item and why.
    pub fn parse(value: &str, limits: &Limits) -> Result<XChaos, HeaderError> {
        let (x, mut errors) = Self::parse_lossy(value.as_bytes(), limits);
        match errors.is_empty() {
            true => Ok(x),
            false => Err(errors.swap_remove(0)),
        }
    }

    /// Parses a header value leniently: bad items are skipped and returned beside the result.
    pub fn parse_lossy(value: &[u8], limits: &Limits) -> (XChaos, Vec<HeaderError>) {
        let mut out = XChaos::default();
        let mut errors = Vec::new();
        if value.len() > limits.max_header_bytes {
            errors.push(HeaderError::new(
                "",
                "too_long",
                format!(
                    "x-chaos is {} bytes, above the limit of {} (limits.max_header_bytes)",
                    value.len(),
                    limits.max_header_bytes
                ),
            ));
            return (out, errors);
        }
        let Ok(text) = std::str::from_utf8(value) else {
            errors.push(HeaderError::new(
                "",
                "not_ascii",
                "x-chaos is not ASCII text",
            ));
            return (out, errors);
        };
        if !text.is_ascii() {
            errors.push(HeaderError::new(
                "",
                "not_ascii",
                "x-chaos is not ASCII text",
            ));
            return (out, errors);
        }
        let mut count = 0usize;
        for raw in text.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                if text.trim().is_empty() {
                    break;
                }
                errors.push(HeaderError::new(item, "syntax", "empty item"));
                continue;
            }
            count += 1;
            if count > limits.max_items {
                errors.push(HeaderError::new(
                    item,
                    "too_many_items",
                    format!(
                        "more than {} items (limits.max_items); the rest are ignored",
                        limits.max_items
                    ),
                ));
                continue;
            }
            match parse_item(item, limits) {
                Ok(Item::Scenario(s)) => out.scenarios.push(s),
                Ok(Item::Directive(d)) => out.directives.push(d),
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty() && self.directives.is_empty()
    }
}

enum Item {
    Scenario(String),
    Directive(Directive),
}

fn parse_item(item: &str, limits: &Limits) -> Result<Item, HeaderError> {
    let mut parts = item.split(';');
    let head = parts.next().unwrap_or_default().trim();
    let Some((key, value)) = head.split_once('=') else {
        return Err(HeaderError::new(item, "syntax", "expected `key=value`"));
    };
    let (key, value) = (key.trim(), value.trim());
    if value.is_empty() {
        return Err(HeaderError::new(
            item,
            "syntax",
            format!("`{key}` has no value"),
        ));
    }
    if key == "scenario" {
        if parts.next().is_some() {
            return Err(HeaderError::new(
                item,
                "bad_param",
                "`scenario` takes no params",
            ));
        }
        Name::Scenario
            .check(value)
            .map_err(|e| HeaderError::new(item, "bad_value", e))?;
        return Ok(Item::Scenario(value.to_owned()));
    }
    let fault = match key {
        "delay" | "abort" | "drop" | "error" => {
            Fault::parse_short(key, value).map_err(|e| HeaderError::new(item, "bad_value", e))?
        }
        other => {
            return Err(HeaderError::new(
                item,
                "unknown_key",
                format!(
                    "unknown key `{other}`, expected one of `scenario`, `delay`, `abort`, `drop`, `error`"
                ),
            ));
        }
    };
    limits
        .check_delay(&fault)
        .map_err(|e| HeaderError::new(item, "above_ceiling", e))?;
    let mut d = Directive::new(fault);
    let mut seen: [bool; 4] = [false; 4];
    for p in parts {
        let p = p.trim();
        let Some((k, v)) = p.split_once('=') else {
            return Err(HeaderError::new(
                item,
                "bad_param",
                format!("param `{p}` is not `name=value`"),
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        let slot = match k {
            "point" => 0,
            "target" => 1,
            "rate" => 2,
            "hops" => 3,
            other => {
                return Err(HeaderError::new(
                    item,
                    "bad_param",
                    format!(
                        "unknown param `{other}`, expected one of `point`, `target`, `rate`, `hops`"
                    ),
                ));
            }
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(HeaderError::new(
                item,
                "bad_param",
                format!("param `{k}` is given twice"),
            ));
        }
        if slot < 2 {
            let param = if slot == 0 { "point" } else { "target" };
            Name::Param(param)
                .check(v)
                .map_err(|e| HeaderError::new(item, "bad_param", e))?;
        }
        match slot {
            0 => d.point = Some(v.to_owned()),
            1 => d.target = Some(v.to_owned()),
            2 => {
                d.rate = v
                    .parse()
                    .map_err(|e| HeaderError::new(item, "bad_param", e))?
            }
            _ => {
                d.hops = Some(v.parse::<u32>().map_err(|_| {
                    HeaderError::new(
                        item,
                        "bad_param",
                        format!("hops `{v}` is not a whole number"),
                    )
                })?);
            }
        }
    }
    if d.hops == Some(0) {
        return Err(HeaderError::new(
            item,
            "bad_param",
            "hops 0 reaches no service",
        ));
    }
    Ok(Item::Directive(d))
}

impl fmt::Display for XChaos {
    /// The canonical header value; [`XChaos::parse`] reads it back to an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if !std::mem::replace(&mut first, false) {
                f.write_str(", ")?;
            }
            Ok::<(), fmt::Error>(())
        };
        for s in &self.scenarios {
            sep(f)?;
            write!(f, "scenario={s}")?;
        }
        for d in &self.directives {
            let Some((k, v)) = d.fault.short_form() else {
                continue;
            };
            sep(f)?;
            write!(f, "{k}={v}")?;
            if let Some(p) = &d.point {
                write!(f, ";point={p}")?;
            }
            if let Some(t) = &d.target {
                write!(f, ";target={t}")?;
            }
            if d.rate != Rate::ALWAYS {
                write!(f, ";rate={}", d.rate)?;
            }
            if let Some(h) = d.hops {
                write!(f, ";hops={h}")?;
            }
        }
        Ok(())
    }
}

/// Parses `x-test-traffic`: `1` / `true` mean yes, `0` / `false` no (any ASCII case).
///
/// ```
/// use chaos_core::context::parse_test_traffic;
/// assert_eq!(parse_test_traffic(b"1"), Ok(true));
/// assert!(parse_test_traffic(b"maybe").is_err());
/// ```
pub fn parse_test_traffic(value: &[u8]) -> Result<bool, HeaderError> {
    let v = value.trim_ascii();
    if v == b"1" || v.eq_ignore_ascii_case(b"true") {
        Ok(true)
    } else if v == b"0" || v.eq_ignore_ascii_case(b"false") {
        Ok(false)
    } else {
        Err(HeaderError::new(
            &String::from_utf8_lossy(v),
            "bad_test_traffic",
            "x-test-traffic must be `1`, `true`, `0` or `false`",
        ))
    }
}
