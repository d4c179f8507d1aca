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

#[cfg(feature = "otel")]
pub(crate) mod baggage;
pub(crate) mod cache;
mod grammar;
pub mod headers;
pub(crate) mod inbound;
mod scope;
pub mod signature;

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

pub use self::grammar::{Directive, HeaderError, XChaos, parse_test_traffic};
pub use self::scope::{ChaosFutureExt, WithContext};
use crate::names::Name;

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
    /// The next hop's headers, made once, for a context many requests share.
    next: Option<Forward>,
}

/// What a shared context forwards, made once: each forward clones reference counts.
#[derive(Debug)]
struct Forward {
    next: NextHop,
    /// Its `baggage` members (feature `otel`).
    #[cfg(feature = "otel")]
    baggage: Option<HeaderValue>,
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
                next: None,
            }),
        }
    }

    /// A context of tags and the test-traffic mark only, to be shared by many requests
    /// (see `cache`): its next hop's headers are made now, and forwarding them later
    /// copies no bytes.
    pub(crate) fn shared(header: XChaos, test_traffic: bool) -> ChaosContext {
        let plain = ChaosContext::new(header, test_traffic, Trust::Untrusted, 0);
        let next = plain.next_hop();
        let forward = Forward {
            #[cfg(feature = "otel")]
            baggage: baggage::our_members(
                next.x_chaos.as_ref(),
                next.signature.as_ref(),
                next.test_traffic.is_some(),
            ),
            next,
        };
        // The values' bytes now shared, so each clone is a reference count (a value made
        // from a `String` is promoted to shared storage by its first clone).
        drop(forward.next.clone());
        #[cfg(feature = "otel")]
        drop(forward.baggage.clone());
        let Ok(mut inner) = Arc::try_unwrap(plain.inner) else {
            unreachable!("a context just made has one owner")
        };
        inner.next = Some(forward);
        ChaosContext {
            inner: Arc::new(inner),
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
        if let Some(f) = &i.next {
            return f.next.clone();
        }
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
    /// With the `otel` feature, the same context is also written as W3C `baggage` members
    /// (`chaos`, `chaos-signature`, `test-traffic`), merged with the request's own
    /// baggage, for hops that forward baggage but not our headers (see
    /// [`otel`](crate::otel)).
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
        use self::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC, carries_context};
        if carries_context(headers) {
            return;
        }
        let next = self.next_hop();
        #[cfg(feature = "otel")]
        match &self.inner.next {
            Some(f) => {
                if let Some(ours) = &f.baggage {
                    baggage::write_members(headers, ours);
                }
            }
            None => baggage::write_baggage(
                headers,
                next.x_chaos.as_ref(),
                next.signature.as_ref(),
                next.test_traffic.is_some(),
            ),
        }
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
    use crate::rules::Limits;

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
