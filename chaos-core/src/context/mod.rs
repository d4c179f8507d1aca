//! The chaos context that travels with a request: the `x-chaos` and `x-test-traffic` headers.
//!
//! # Grammar
//!
//! ```text
//! x-chaos        = item *( "," item )              ; whitespace around items is ignored
//! item           = key "=" value *( ";" param "=" value )
//! key            = "scenario" | "delay" | "abort" | "drop" | "error"
//! param          = "point" | "target" | "rate" | "hops"   ; directives only
//! ```
//!
//! * `scenario=NAME` tags the request (`NAME`: letters, digits, `.`, `_`, `-`; at most 64).
//!   Operator rules may match it; a tag alone never injects anything.
//! * A *directive* asks for a fault on this request: `delay=250ms`, `delay=100ms..400ms`,
//!   `abort=503`, `abort=grpc:14`, `drop=reset`, `drop=hang`, `error=unavailable`,
//!   `error=timeout`, `error=sqlstate:40001`. Params: `point=server|client|sql|NAME`
//!   (default `server`), `target=NAME` (default: any), `rate=25%` (default 100%), `hops=N`.
//!   Directives are refused unless the engine allows them (`allow_directives`) or the
//!   request carries a valid `x-chaos-signature`.
//! * Hops: `hops=N` lets a directive reach N services: each client adapter forwards it with
//!   `N-1` and drops it at 0. A directive with no `point`, `target` or `hops` is for the first
//!   server hop only (as if `hops=1`); otherwise it travels as far as the context does.
//!
//! `x-test-traffic: 1` (or `true`) marks synthetic traffic.
//!
//! ## Examples
//!
//! ```text
//! x-chaos: scenario=gameday-7
//! x-chaos: scenario=gameday-7, delay=300ms;point=client;target=payments;rate=50%, abort=503;point=sql
//! x-chaos: abort=503;target=orders;hops=2
//! ```
//!
//! Parsing is strict ([`XChaos::parse`], for tests and tools) or lenient
//! ([`XChaos::parse_lossy`], for requests: bad items are skipped and reported, never fatal).

mod scope;
pub mod signature;

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

pub use self::scope::{ChaosFutureExt, WithContext};
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

/// Whether directives in a context may take effect, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// Directives are ignored (tags still select operator rules).
    Untrusted,
    /// Directives are allowed by configuration (`allow_directives`) or by code.
    Allowed,
    /// Directives carry a valid signature; forwarded unchanged with it.
    Signed {
        /// The exact `x-chaos` value that was signed.
        value: HeaderValue,
        /// `t=...,v1=...` as received, without the hop counter.
        signature: String,
    },
}

/// The chaos context of one request: scenario tags, test-traffic mark, and directives with
/// their trust. Cheap to clone (one `Arc`).
///
/// The server layer builds it from headers (see `Chaos::context_from_headers`) and runs the
/// handler inside [`ChaosContext::scope`], so code deeper in the same request sees it with
/// [`ChaosContext::current`]. Tests build one with [`ChaosContext::builder`].
#[derive(Clone)]
pub struct ChaosContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    header: XChaos,
    test_traffic: bool,
    trust: Trust,
    /// How many hops this context has already taken since it was signed.
    hop: u32,
}

impl fmt::Debug for ChaosContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosContext")
            .field("scenarios", &self.inner.header.scenarios)
            .field("test_traffic", &self.inner.test_traffic)
            .field("directives", &self.inner.header.directives.len())
            .field("trusted", &self.is_trusted())
            .finish()
    }
}

impl PartialEq for ChaosContext {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.header == other.inner.header
                && self.inner.test_traffic == other.inner.test_traffic
                && self.inner.trust == other.inner.trust
                && self.inner.hop == other.inner.hop)
    }
}

/// Builds a [`ChaosContext`] in code.
#[derive(Debug, Default)]
#[must_use]
pub struct ContextBuilder {
    header: XChaos,
    test_traffic: bool,
    trusted: bool,
}

impl ContextBuilder {
    /// Adds a scenario tag.
    ///
    /// # Panics
    ///
    /// Panics if the name is not a valid scenario name.
    #[track_caller]
    pub fn scenario(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if let Err(e) = Name::Scenario.check(&name) {
            panic!("{e}");
        }
        self.header.scenarios.push(name);
        self
    }

    /// Marks the context as synthetic traffic.
    pub fn test_traffic(mut self, yes: bool) -> Self {
        self.test_traffic = yes;
        self
    }

    /// Adds a directive.
    pub fn directive(mut self, d: Directive) -> Self {
        self.header.directives.push(d);
        self
    }

    /// Lets the directives take effect (as `allow_directives` would).
    pub fn trusted(mut self, yes: bool) -> Self {
        self.trusted = yes;
        self
    }

    /// Builds the context.
    pub fn build(self) -> ChaosContext {
        ChaosContext::new(
            self.header,
            self.test_traffic,
            if self.trusted {
                Trust::Allowed
            } else {
                Trust::Untrusted
            },
            0,
        )
    }
}

/// The headers to send to the next hop, from [`ChaosContext::next_hop`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NextHop {
    /// `x-chaos`, if anything is left to forward.
    pub x_chaos: Option<HeaderValue>,
    /// `x-chaos-signature`, for a signed context (with the hop counter advanced).
    pub signature: Option<HeaderValue>,
    /// `x-test-traffic: 1`, for synthetic traffic.
    pub test_traffic: Option<HeaderValue>,
}

impl ChaosContext {
    pub(crate) fn new(header: XChaos, test_traffic: bool, trust: Trust, hop: u32) -> ChaosContext {
        ChaosContext {
            inner: Arc::new(Inner {
                header,
                test_traffic,
                trust,
                hop,
            }),
        }
    }

    /// Starts building a context in code.
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The scenario tags.
    pub fn scenarios(&self) -> &[String] {
        &self.inner.header.scenarios
    }

    /// Whether the request carries this scenario tag.
    pub fn has_scenario(&self, name: &str) -> bool {
        self.inner.header.scenarios.iter().any(|s| s == name)
    }

    /// Whether the request is synthetic traffic.
    pub fn is_test_traffic(&self) -> bool {
        self.inner.test_traffic
    }

    /// Whether directives may take effect.
    pub fn is_trusted(&self) -> bool {
        !matches!(self.inner.trust, Trust::Untrusted)
    }

    /// Why directives may (or may not) take effect.
    pub fn trust(&self) -> &Trust {
        &self.inner.trust
    }

    /// All directives as received, trusted or not.
    pub fn directives(&self) -> &[Directive] {
        &self.inner.header.directives
    }

    /// The directives that may take effect at this hop: trusted, with hops left.
    pub fn active_directives(&self) -> impl Iterator<Item = &Directive> {
        let hop = self.inner.hop;
        let trusted = self.is_trusted();
        self.inner
            .header
            .directives
            .iter()
            .filter(move |d| trusted && d.effective_hops().is_none_or(|h| h > hop))
    }

    /// The parsed header.
    pub fn header(&self) -> &XChaos {
        &self.inner.header
    }

    /// The headers for the next hop: hops advanced, spent directives dropped, untrusted
    /// directives never forwarded. A signed context is forwarded byte for byte with its
    /// signature, and the hop counter travels in the signature header (`h=N`).
    ///
    /// ```
    /// use chaos_core::ChaosContext;
    /// use chaos_core::context::Directive;
    /// use chaos_core::rules::{Abort, Fault};
    ///
    /// let ctx = ChaosContext::builder()
    ///     .scenario("gameday-7")
    ///     .test_traffic(true)
    ///     .directive(Directive::new(Fault::Abort(Abort::http(503))).target("orders").hops(2))
    ///     .trusted(true)
    ///     .build();
    /// let next = ctx.next_hop();
    /// assert_eq!(next.x_chaos.unwrap(), "scenario=gameday-7, abort=503;target=orders;hops=1");
    /// assert_eq!(next.test_traffic.unwrap(), "1");
    /// ```
    pub fn next_hop(&self) -> NextHop {
        let i = &self.inner;
        let test_traffic = i.test_traffic.then(|| HeaderValue::from_static("1"));
        if let Trust::Signed { value, signature } = &i.trust {
            let sig = format!("{signature},h={}", i.hop + 1);
            return NextHop {
                x_chaos: Some(value.clone()),
                signature: HeaderValue::try_from(sig).ok(),
                test_traffic,
            };
        }
        let mut next = XChaos {
            scenarios: i.header.scenarios.clone(),
            directives: Vec::new(),
        };
        if self.is_trusted() {
            for d in &i.header.directives {
                match d.effective_hops() {
                    None => next.directives.push(d.clone()),
                    Some(h) if h > i.hop + 1 => {
                        let mut d = d.clone();
                        d.hops = Some(h - i.hop - 1);
                        next.directives.push(d);
                    }
                    Some(_) => {}
                }
            }
        }
        NextHop {
            x_chaos: (!next.is_empty())
                .then(|| HeaderValue::try_from(next.to_string()).ok())
                .flatten(),
            signature: None,
            test_traffic,
        }
    }

    /// Writes [`next_hop`](Self::next_hop) into an outbound request's headers, unless the
    /// request already carries `x-chaos` or `x-test-traffic` of its own (code that sets
    /// them on purpose wins). This is what every client adapter does.
    ///
    /// ```
    /// use chaos_core::ChaosContext;
    ///
    /// let ctx = ChaosContext::builder().scenario("gameday-7").test_traffic(true).build();
    /// let mut headers = http::HeaderMap::new();
    /// ctx.forward_to(&mut headers);
    /// assert_eq!(headers["x-chaos"], "scenario=gameday-7");
    /// assert_eq!(headers["x-test-traffic"], "1");
    /// ```
    pub fn forward_to(&self, headers: &mut http::HeaderMap) {
        use crate::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};
        if headers.contains_key(&X_CHAOS) || headers.contains_key(&X_TEST_TRAFFIC) {
            return;
        }
        let next = self.next_hop();
        if let Some(v) = next.x_chaos {
            headers.insert(X_CHAOS, v);
            if let Some(s) = next.signature {
                headers.insert(X_CHAOS_SIGNATURE, s);
            }
        }
        if let Some(v) = next.test_traffic {
            headers.insert(X_TEST_TRAFFIC, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn example_from_design() {
        let x = XChaos::parse(
            "scenario=gameday-7, delay=300ms;point=client;target=payments;rate=50%, abort=503;point=sql",
            &limits(),
        )
        .unwrap();
        assert_eq!(x.scenarios, ["gameday-7"]);
        assert_eq!(x.directives.len(), 2);
        assert_eq!(x.directives[0].point.as_deref(), Some("client"));
        assert_eq!(x.directives[0].rate.fraction(), 0.5);
        assert_eq!(x.directives[1].point_name(), "sql");
    }

    #[test]
    fn hops_decrement_and_stop() {
        let x = XChaos::parse("abort=503;target=b;hops=2, delay=1s", &limits()).unwrap();
        let ctx = ChaosContext::new(x, true, Trust::Allowed, 0);
        assert_eq!(ctx.active_directives().count(), 2);
        let next = ctx.next_hop();
        assert_eq!(next.x_chaos.unwrap(), "abort=503;target=b;hops=1");
        assert_eq!(next.test_traffic.unwrap(), "1");
    }

    #[test]
    fn untrusted_directives_are_not_forwarded() {
        let x = XChaos::parse("scenario=s1, abort=503;target=b", &limits()).unwrap();
        let ctx = ChaosContext::new(x, false, Trust::Untrusted, 0);
        assert_eq!(ctx.active_directives().count(), 0);
        assert_eq!(ctx.next_hop().x_chaos.unwrap(), "scenario=s1");
    }
}
