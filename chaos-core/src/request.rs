//! The borrowed view of a request that every adapter builds to ask for a decision.

use http::{HeaderMap, Method};

use crate::context::ChaosContext;

/// Where a decision is taken.
///
/// ```
/// use chaos_core::Point;
/// assert_eq!(Point::from_name("sql"), Point::Sql);
/// assert_eq!(Point::from_name("queue.publish").name(), "queue.publish");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Point<'a> {
    /// Inbound request in a server layer.
    Server,
    /// Outbound call in an HTTP client adapter.
    Client,
    /// A statement in the SQL adapter.
    Sql,
    /// Any other point an application names (`queue.publish`).
    Named(&'a str),
}

impl<'a> Point<'a> {
    /// The point for a name: `server`, `client` and `sql` are the built-in ones.
    pub fn from_name(name: &'a str) -> Point<'a> {
        match name {
            "server" => Point::Server,
            "client" => Point::Client,
            "sql" => Point::Sql,
            other => Point::Named(other),
        }
    }

    /// The point's name.
    pub fn name(&self) -> &'a str {
        match self {
            Point::Server => "server",
            Point::Client => "client",
            Point::Sql => "sql",
            Point::Named(n) => n,
        }
    }
}

impl<'a> From<&'a str> for Point<'a> {
    fn from(name: &'a str) -> Point<'a> {
        Point::from_name(name)
    }
}

/// What a decision looks at: the point, the target, and whatever the adapter knows of the
/// request. Cheap to build: everything is borrowed.
///
/// ```
/// use chaos_core::{Point, RequestView};
/// let method = http::Method::POST;
/// let view = RequestView::new(Point::Client, "payments")
///     .method(&method)
///     .path("/api/checkout/42");
/// # let _ = view;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub(crate) point: Point<'a>,
    pub(crate) target: &'a str,
    pub(crate) method: Option<&'a Method>,
    pub(crate) path: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) uri: Option<&'a http::Uri>,
    pub(crate) headers: Option<&'a HeaderMap>,
    pub(crate) sql: Option<&'a str>,
    pub(crate) context: Option<&'a ChaosContext>,
}

impl<'a> RequestView<'a> {
    /// A view at `point` for `target` (empty when the adapter has no name).
    #[inline]
    pub fn new(point: Point<'a>, target: &'a str) -> RequestView<'a> {
        RequestView {
            point,
            target,
            method: None,
            path: None,
            host: None,
            uri: None,
            headers: None,
            sql: None,
            context: None,
        }
    }

    /// The HTTP method.
    #[inline]
    #[must_use]
    pub fn method(mut self, m: &'a Method) -> Self {
        self.method = Some(m);
        self
    }

    /// The request path.
    #[inline]
    #[must_use]
    pub fn path(mut self, p: &'a str) -> Self {
        self.path = Some(p);
        self
    }

    /// The request URI: its path, and its host when it has one (a client's absolute
    /// URI). Without a host in the URI, `match.host` looks at the `Host` header.
    #[inline]
    #[must_use]
    pub fn uri(mut self, u: &'a http::Uri) -> Self {
        self.path = Some(u.path());
        self.uri = Some(u);
        self
    }

    /// The host called, without the port (matched by `match.host`). Needed only when
    /// neither the URI nor the `Host` header tells it.
    #[inline]
    #[must_use]
    pub fn host(mut self, h: &'a str) -> Self {
        self.host = Some(h);
        self
    }

    /// The request headers.
    #[inline]
    #[must_use]
    pub fn headers(mut self, h: &'a HeaderMap) -> Self {
        self.headers = Some(h);
        self
    }

    /// The SQL statement.
    #[inline]
    #[must_use]
    pub fn sql(mut self, s: &'a str) -> Self {
        self.sql = Some(s);
        self
    }

    /// The request's chaos context.
    #[inline]
    #[must_use]
    pub fn context(mut self, c: Option<&'a ChaosContext>) -> Self {
        self.context = c;
        self
    }

    /// The host for `match.host`: given, else the URI's, else the `Host` header's
    /// without its port. Only looked up when a rule asks.
    pub(crate) fn host_name(&self) -> Option<&'a str> {
        if let Some(h) = self.host {
            return Some(h);
        }
        if let Some(h) = self.uri.and_then(http::Uri::host) {
            return Some(h);
        }
        let raw = self.headers?.get(http::header::HOST)?.to_str().ok()?;
        Some(strip_port(raw))
    }

    /// The point.
    pub fn point(&self) -> Point<'a> {
        self.point
    }

    /// The target.
    pub fn target(&self) -> &'a str {
        self.target
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split_once(':').map_or(authority, |(h, _)| h)
}

/// An outbound call as an adapter holds it, for [`Chaos::outbound`](crate::Chaos::outbound):
/// the one sequence every client adapter runs (the context, forwarded; the decision; the
/// observation).
///
/// ```
/// use chaos_core::{Chaos, ChaosContext, OutboundCall, Point, RequestView};
///
/// /// A message about to be published, with headers of its own.
/// struct Publish<'a> {
///     topic: &'a str,
///     headers: &'a mut http::HeaderMap,
/// }
///
/// impl OutboundCall for Publish<'_> {
///     fn forward(&mut self, ctx: &ChaosContext) {
///         ctx.forward_to(self.headers);
///     }
///
///     fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a> {
///         RequestView::new(Point::Named("queue.publish"), self.topic).context(ctx)
///     }
/// }
///
/// let chaos = Chaos::new();
/// let mut headers = http::HeaderMap::new();
/// let ctx = ChaosContext::builder().scenario("gameday-7").build();
/// let (decision, observation) = ctx.sync_scope(|| {
///     chaos.outbound(None, &mut Publish { topic: "orders", headers: &mut headers })
/// });
/// assert!(!decision.is_inject() && observation.is_none(), "no rules: nothing to observe");
/// assert_eq!(headers["x-chaos"], "scenario=gameday-7");
/// ```
pub trait OutboundCall {
    /// Sends `ctx` on with the call (onto its outgoing headers). An adapter that does not
    /// forward (a SQL statement, a call leaving the fleet) does nothing.
    fn forward(&mut self, ctx: &ChaosContext);

    /// The call as the rules see it, with `ctx` in it.
    fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a>;

    /// The steady state the adapter records the call's outcome in, if it keeps one: its
    /// organic calls are then timed by that steady state's sample
    /// ([`Chaos::observe_sampled`](crate::Chaos::observe_sampled)). `None` (the default)
    /// times every call.
    fn steady_state(&self) -> Option<&crate::outcome::SteadyState> {
        None
    }
}
