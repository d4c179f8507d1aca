//! The reqwest-middleware [`Middleware`]: point `client`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chaos_core::body::FaultBody;
use chaos_core::headers::X_CHAOS_INJECTED;
use chaos_core::respond::{self, is_grpc};
use chaos_core::steady::SteadyState;
use chaos_core::{
    Chaos, ChaosContext, Decision, HttpAction, HttpSide, InjectedFault, Injection, Observation,
    OutboundCall, Point, RequestView, Wait,
};
use http::header::CONTENT_LENGTH;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Request, Response, ResponseBuilderExt, Url};
use reqwest_middleware::{Middleware, Next};

/// Per-request override, set with
/// [`RequestBuilder::with_extension`](reqwest_middleware::RequestBuilder::with_extension):
/// this call is outside chaos. No fault is injected and no chaos header is added.
///
/// ```
/// # async fn call(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// use chaos_reqwest::SkipChaos;
/// client.get("http://127.0.0.1:9/health").with_extension(SkipChaos).send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipChaos;

/// Per-request override of the dependency name (the rules' `target`) for this call.
///
/// ```
/// # async fn call(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// use chaos_reqwest::ChaosTarget;
/// client
///     .post("http://127.0.0.1:9/v1/charge")
///     .with_extension(ChaosTarget::new("payments"))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaosTarget(Box<str>);

impl ChaosTarget {
    /// This call's dependency name.
    pub fn new(name: impl Into<String>) -> ChaosTarget {
        ChaosTarget(name.into().into_boxed_str())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fails chosen reqwest calls on purpose and carries the chaos context to the next
/// service. See the [crate docs](crate) for what a caller sees of each fault and where to
/// put it among other middleware.
#[derive(Clone)]
pub struct ChaosMiddleware {
    chaos: Chaos,
    target: Option<Box<str>>,
    forward: bool,
    injected_header: Option<HeaderName>,
    timeout: Option<Duration>,
    steady: Arc<SteadyState>,
    /// Whether a wait with no timeout known here was logged (once per middleware).
    untimed_logged: Arc<AtomicBool>,
}

impl fmt::Debug for ChaosMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosMiddleware")
            .field("target", &self.target)
            .field("forward", &self.forward)
            .field("injected_header", &self.injected_header)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ChaosMiddleware {
    /// A middleware for calls to `target` (the rules' `target`), forwarding the context.
    pub fn new(chaos: &Chaos, target: impl Into<String>) -> ChaosMiddleware {
        ChaosMiddleware::builder(chaos).target(target).build()
    }

    /// Starts a middleware whose target is, unless set, each request's host.
    pub fn builder(chaos: &Chaos) -> ChaosMiddlewareBuilder {
        ChaosMiddlewareBuilder {
            chaos: chaos.clone(),
            target: None,
            forward: true,
            injected_header: Some(X_CHAOS_INJECTED),
            timeout: None,
        }
    }

    /// The engine.
    pub fn chaos(&self) -> &Chaos {
        &self.chaos
    }

    /// The steady state the middleware records while the engine is armed (each call: an
    /// error, a 5xx or a failing gRPC status, its latency): the engine's for point
    /// `client` and the middleware's target, or the empty target when calls are named by
    /// their host.
    pub fn steady_state(&self) -> Arc<SteadyState> {
        self.steady.clone()
    }
}

/// Builds a [`ChaosMiddleware`].
#[derive(Debug)]
#[must_use]
pub struct ChaosMiddlewareBuilder {
    chaos: Chaos,
    target: Option<Box<str>>,
    forward: bool,
    injected_header: Option<HeaderName>,
    timeout: Option<Duration>,
}

impl ChaosMiddlewareBuilder {
    /// The dependency's name, matched by the rules' `target`. Default: the request's host.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into().into_boxed_str());
        self
    }

    /// Whether to send the chaos context on (`x-chaos`, `x-chaos-signature`,
    /// `x-test-traffic`). Default `true`; turn it off for calls leaving your fleet.
    pub fn forward(mut self, yes: bool) -> Self {
        self.forward = yes;
        self
    }

    /// The header naming the rule on injected responses (default `x-chaos-injected`);
    /// `None` leaves responses unmarked.
    pub fn injected_header(mut self, name: Option<HeaderName>) -> Self {
        self.injected_header = name;
        self
    }

    /// The client's own total timeout (`reqwest::ClientBuilder::timeout`), which a
    /// middleware cannot read. With it, an injected delay counts against the timeout and
    /// an injected hang ends with a timeout error when it runs out, as a slow server would.
    /// A per-request timeout (`RequestBuilder::timeout`) is read from the request and wins.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The middleware.
    pub fn build(self) -> ChaosMiddleware {
        crate::error::teach();
        if let Some(t) = &self.target {
            self.chaos.declare("client", t);
        }
        ChaosMiddleware {
            steady: self
                .chaos
                .steady_state("client", self.target.as_deref().unwrap_or("")),
            chaos: self.chaos,
            target: self.target,
            forward: self.forward,
            injected_header: self.injected_header,
            timeout: self.timeout,
            untimed_logged: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl ChaosMiddleware {
    /// Names the call's target, and runs the engine's outbound sequence (the context
    /// forwarded, the decision, the observation). Synchronous, so the task-local is read
    /// here.
    fn prepare(&self, req: &mut Request, ext: &Extensions) -> (Decision, Option<Observation>) {
        let per_call = ext.get::<ChaosTarget>().map(ChaosTarget::as_str);
        let named = per_call.or(self.target.as_deref());
        if self.target.is_none() || per_call.is_some() {
            // A target that comes with the call is known once it is seen, armed or not
            // (a named middleware declared its own when it was built).
            let host = req.url().host_str().unwrap_or("");
            self.chaos.declare("client", named.unwrap_or(host));
        }
        self.chaos.outbound(
            ext.get::<ChaosContext>(),
            &mut Call {
                req,
                named,
                forward: self.forward,
                steady: &self.steady,
            },
        )
    }

    /// The time the caller allows this call: the request's own timeout, else the client's
    /// as configured here.
    fn budget(&self, req: &Request) -> Option<Duration> {
        req.timeout().copied().or(self.timeout)
    }

    /// Says once, for this middleware, that an injected wait runs with no timeout known
    /// here: nothing but the wait's own end cuts it short.
    #[cold]
    fn log_untimed(&self, rule: &str) {
        if !self.untimed_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "chaos",
                rule,
                target_name = self.target.as_deref().unwrap_or("(the host)"),
                "an injected delay runs with no timeout known to the middleware, so nothing cuts it short; \
                 state the client's timeout once with ChaosMiddleware::client(..).timeout(..), \
                 or give it to ChaosMiddlewareBuilder::timeout as well as to reqwest"
            );
        }
    }

    fn mark(&self, headers: &mut HeaderMap, rule: &str) {
        respond::mark(headers, self.injected_header.as_ref(), rule);
    }

    /// Applies an injection: the one place a decided action meets reqwest.
    #[cold]
    async fn inject(
        &self,
        inj: Injection,
        mut req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let grpc = is_grpc(req.headers());
        let action = match inj.http_action(HttpSide::Client, grpc) {
            HttpAction::Wait(wait) => match self.wait(wait, &mut req, grpc).await? {
                Ok(inj) => {
                    let mut res = next.run(req, ext).await?;
                    self.mark(res.headers_mut(), inj.rule_id());
                    return Ok(res);
                }
                Err(after) => after,
            },
            other => other,
        };
        match action {
            HttpAction::Respond(inj, res) => {
                Ok(self.synthesized(res, req.url().clone(), inj.rule_id()))
            }
            HttpAction::Fail(_, fault) => Err(fail(fault)),
            HttpAction::WrapBody(inj) => {
                let res = next.run(req, ext).await?;
                Ok(self.with_body_fault(res, inj))
            }
            // What follows a wait never waits again: fail as the hang did.
            HttpAction::Wait(wait) => Err(fail(wait.into_injection().timeout_error())),
        }
    }

    /// Waits as a delay or hang asks, within the caller's timeout: `Ok` with the injection
    /// to go ahead (the request's timeout cut by the time spent), `Ok(Err)` with what to
    /// do instead when a hang reached its ceiling, `Err` when the caller's timeout ran out.
    async fn wait(
        &self,
        wait: Wait,
        req: &mut Request,
        grpc: bool,
    ) -> reqwest_middleware::Result<Result<Injection, HttpAction>> {
        let budget = self.budget(req);
        let start = tokio::time::Instant::now();
        let (inj, waited) = match budget {
            Some(b) => {
                let timed_out = wait.timeout_error();
                match tokio::time::timeout(b, wait).await {
                    Ok(done) => done,
                    // The caller's timeout ran out first.
                    Err(_) => return Err(fail(timed_out)),
                }
            }
            None => {
                if wait.takes_time() && !self.untimed_logged.load(Ordering::Relaxed) {
                    self.log_untimed(wait.timeout_error().rule_id());
                }
                wait.await
            }
        };
        if let Err(fault) = waited {
            return Ok(Err(inj.http_timed_out(fault, HttpSide::Client, grpc)));
        }
        if let Some(b) = budget {
            // What is left of the caller's timeout after the delay.
            *req.timeout_mut() = Some(b.saturating_sub(start.elapsed()));
        }
        Ok(Ok(inj))
    }

    /// A response made here, as reqwest would have built it from a server's answer: the
    /// request's URL, a `content-length`, the attribution header.
    fn synthesized(&self, res: http::Response<Bytes>, url: Url, rule: &str) -> Response {
        let (mut parts, body) = res.into_parts();
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        parts.extensions.extend(url_extension(url));
        self.mark(&mut parts.headers, rule);
        Response::from(http::Response::from_parts(parts, reqwest::Body::from(body)))
    }

    /// The real response with its body truncated, stalled or throttled. The body holds the
    /// injection (the rule's concurrency slot) until it ends.
    fn with_body_fault(&self, res: Response, inj: Injection) -> Response {
        let url = res.url().clone();
        let (mut parts, body) = http::Response::<reqwest::Body>::from(res).into_parts();
        parts.extensions.extend(url_extension(url));
        self.mark(&mut parts.headers, inj.rule_id());
        let body = reqwest::Body::wrap(FaultBody::new(body, inj));
        Response::from(http::Response::from_parts(parts, body))
    }
}

/// The extensions that make `reqwest::Response::url` return `url` (reqwest keeps its
/// type private; its public `ResponseBuilderExt` is the way in).
fn url_extension(url: Url) -> Extensions {
    let mut b = http::Response::builder().url(url);
    b.extensions_mut().map(std::mem::take).unwrap_or_default()
}

/// A reqwest request on its way out, as the engine's outbound sequence sees it.
struct Call<'r> {
    req: &'r mut Request,
    /// Its target, unless it is the request's host.
    named: Option<&'r str>,
    forward: bool,
    steady: &'r SteadyState,
}

impl OutboundCall for Call<'_> {
    fn forward(&mut self, ctx: &ChaosContext) {
        if self.forward {
            ctx.forward_to(self.req.headers_mut());
        }
    }

    fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a> {
        let url = self.req.url();
        let host = url.host_str().unwrap_or("");
        RequestView::new(Point::Client, self.named.unwrap_or(host))
            .method(self.req.method())
            .path(url.path())
            .host(host)
            .headers(self.req.headers())
            .context(ctx)
    }

    fn steady_state(&self) -> Option<&SteadyState> {
        Some(self.steady)
    }
}

/// An injected fault as a middleware error.
fn fail(fault: InjectedFault) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(fault)
}

#[async_trait::async_trait]
impl Middleware for ChaosMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if ext.get::<SkipChaos>().is_some() {
            return next.run(req, ext).await;
        }
        let (decision, obs) = self.prepare(&mut req, ext);
        // Each arm records its own outcome, so the response is not moved through a tuple.
        match decision {
            Decision::Pass => {
                let out = next.run(req, ext).await;
                if let Some(o) = obs {
                    o.finish(&self.chaos, &self.steady, failed(&out), false);
                }
                out
            }
            // Boxed, so the future of a call that passes stays small.
            Decision::Inject(inj) => {
                let out = Box::pin(self.inject(inj, req, ext, next)).await;
                if let Some(o) = obs {
                    o.finish(&self.chaos, &self.steady, failed(&out), true);
                }
                out
            }
        }
    }
}

/// Whether a call's outcome is a failure for the steady state: an error, a 5xx, or a
/// failing gRPC status.
fn failed(out: &reqwest_middleware::Result<Response>) -> bool {
    out.as_ref()
        .map_or(true, |r| respond::is_failure(r.status(), r.headers()))
}
