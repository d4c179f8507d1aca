//! The client layer: the injection point `client`, for outbound calls made through a
//! tower client (hyper-util's legacy `Client`, a tonic `Channel`, any
//! `Service<http::Request<B>>`).
//!
//! It is named by the dependency it wraps (the rules' `target`). Per call it:
//!
//! * forwards the current [`ChaosContext`] to the next hop: `x-chaos` (directives' hop
//!   budgets advanced, spent or untrusted directives dropped; a signed context verbatim
//!   with its `x-chaos-signature`) and `x-test-traffic`. The context is the one in the
//!   request's extensions, else the task's (set by the server layer);
//! * decides at point `client` for its target and applies the fault:
//!
//! | fault | what the caller gets |
//! |---|---|
//! | `delay` | the real response, later (the readiness reservation is held meanwhile) |
//! | `abort` | a synthesized response with the rule's status, body and headers; for gRPC, a trailers-only response (`grpc-status`) |
//! | `error: KIND`, `drop: reset` | `Err(`[`InjectedFault`](chaos_core::InjectedFault)`)`, a connection-class error (gRPC: a trailers-only `UNAVAILABLE`, `DEADLINE_EXCEEDED` or `INTERNAL`) |
//! | `drop: hang` | nothing until the caller gives up, the kill switch, or `limits.max_hang` (then a timeout error) |
//! | `body` | the real response with its body truncated, stalled or throttled |
//!
//! The error type is [`BoxError`], like tower's own `Timeout`: find the
//! injected fault with [`InjectedFault::find`](chaos_core::InjectedFault::find).
//!
//! ```
//! use chaos_core::Chaos;
//! use chaos_tower::ChaosClientLayer;
//! use tower::ServiceBuilder;
//! # fn wrap<S>(http_client: S) {
//! let chaos = Chaos::from_env();
//! let payments = ServiceBuilder::new()
//!     .layer(ChaosClientLayer::new(&chaos, "payments"))
//!     .service(http_client);
//! # let _ = payments;
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use chaos_core::rules::{DropKind, ErrorKind, Fault};
use chaos_core::{Chaos, ChaosContext, Decision, Injection, Point, RequestView, WaitOutcome};
use http::{HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::body::ChaosBody;
use crate::respond;

struct Shared {
    chaos: Chaos,
    target: Box<str>,
    forward: bool,
    injected_header: Option<HeaderName>,
}

/// A [`Layer`] for outbound calls to one dependency (point `client`). See the
/// [module docs](self).
///
/// Cheap to copy; its settings are allocated once and kept for the life of the process.
#[derive(Clone, Copy)]
pub struct ChaosClientLayer {
    shared: &'static Shared,
}

impl fmt::Debug for ChaosClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosClientLayer")
            .field("target", &self.shared.target)
            .field("forward", &self.shared.forward)
            .finish_non_exhaustive()
    }
}

impl ChaosClientLayer {
    /// A layer for calls to `target` that forwards the chaos context.
    pub fn new(chaos: &Chaos, target: impl Into<String>) -> ChaosClientLayer {
        ChaosClientLayer::with_options(chaos, target, true)
    }

    /// A layer for calls to `target`; `forward: false` injects faults but does not send
    /// the chaos headers on (for calls leaving your fleet).
    pub fn with_options(
        chaos: &Chaos,
        target: impl Into<String>,
        forward: bool,
    ) -> ChaosClientLayer {
        let shared = Box::leak(Box::new(Shared {
            chaos: chaos.clone(),
            target: target.into().into_boxed_str(),
            forward,
            injected_header: Some(chaos_core::headers::X_CHAOS_INJECTED),
        }));
        ChaosClientLayer { shared }
    }
}

impl<S> Layer<S> for ChaosClientLayer {
    type Service = ChaosClient<S>;

    fn layer(&self, inner: S) -> ChaosClient<S> {
        ChaosClient {
            inner,
            shared: self.shared,
        }
    }
}

/// The client-side chaos middleware, made by [`ChaosClientLayer`].
#[derive(Clone)]
pub struct ChaosClient<S> {
    inner: S,
    shared: &'static Shared,
}

impl<S: fmt::Debug> fmt::Debug for ChaosClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosClient")
            .field("inner", &self.inner)
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl<S> ChaosClient<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, giving back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ChaosClient<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: ChaosBody,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let sh = self.shared;
        let ext = req.extensions().get::<ChaosContext>().cloned();
        let decision = ChaosContext::with_current(|cur| {
            let ctx = ext.as_ref().or(cur);
            if sh.forward
                && let Some(c) = ctx
            {
                c.forward_to(req.headers_mut());
            }
            if !sh.chaos.is_armed() {
                return Decision::Pass;
            }
            sh.chaos.decide(
                &RequestView::new(Point::Client, &sh.target)
                    .method(req.method())
                    .uri(req.uri())
                    .headers(req.headers())
                    .context(ctx),
            )
        });
        let state = match decision {
            Decision::Pass => State::Called {
                fut: self.inner.call(req),
            },
            Decision::Inject(inj) => return self.inject(inj, req),
        };
        ResponseFuture {
            state,
            shared: sh,
            injection: None,
            grpc: false,
        }
    }
}

impl<S> ChaosClient<S> {
    #[cold]
    #[inline(never)]
    fn inject<ReqB, ResB>(&mut self, inj: Injection, req: Request<ReqB>) -> ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
        S::Error: Into<BoxError>,
        ResB: ChaosBody,
    {
        let grpc = respond::is_grpc(req.headers());
        let (state, inj) = match inj.fault() {
            Fault::Delay(_) | Fault::Drop(DropKind::Hang) | Fault::Pause(_) => {
                // Keep the readiness reservation (tower's AsyncFilter idiom).
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                let wait: BoxWait = Box::pin(async move {
                    let outcome = inj.wait().await;
                    (inj, outcome)
                });
                let state = State::Waiting {
                    waiting: Box::new(Waiting {
                        wait,
                        svc: Some(svc),
                        req: Some(req),
                    }),
                };
                (state, None)
            }
            Fault::Body(_) => (
                State::Called {
                    fut: self.inner.call(req),
                },
                Some(inj),
            ),
            Fault::Abort(a) => {
                let res = respond::abort(a, inj.rule_id(), grpc);
                (State::Ready { res: Some(res) }, Some(inj))
            }
            Fault::Error(k) if grpc => {
                let res = respond::error(*k, inj.rule_id(), grpc);
                (State::Ready { res: Some(res) }, Some(inj))
            }
            Fault::Drop(DropKind::Reset) if grpc => {
                let res = respond::error(ErrorKind::Unavailable, inj.rule_id(), grpc);
                (State::Ready { res: Some(res) }, Some(inj))
            }
            _ => {
                let err = error_of(&inj);
                (State::Failed { err: Some(err) }, None)
            }
        };
        ResponseFuture {
            state,
            shared: self.shared,
            injection: inj,
            grpc,
        }
    }
}

/// The error for a fault that fails the call; a fault this version does not know breaks
/// the connection, as it does at the server.
fn error_of(inj: &Injection) -> BoxError {
    Box::new(inj.to_error().unwrap_or_else(|| inj.reset_error()))
}

type BoxWait = Pin<Box<dyn Future<Output = (Injection, WaitOutcome)> + Send>>;

struct Waiting<S, ReqB> {
    wait: BoxWait,
    svc: Option<S>,
    req: Option<Request<ReqB>>,
}

pin_project! {
    /// Response future of [`ChaosClient`]: the inner future, unboxed, when nothing is
    /// injected.
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
        shared: &'static Shared,
        injection: Option<Injection>,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Called { #[pin] fut: S::Future },
        // Boxed, so the future stays small on the path that passes.
        Waiting { waiting: Box<Waiting<S, ReqB>> },
        Ready { res: Option<S::Response> },
        Failed { err: Option<BoxError> },
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("injection", &self.injection)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: ChaosBody,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(finish(res, this.injection.take(), this.shared)));
                }
                StateProj::Waiting { waiting } => {
                    let Waiting { wait, svc, req } = &mut **waiting;
                    let (inj, outcome) = ready!(wait.as_mut().poll(cx));
                    if matches!(inj.fault(), Fault::Drop(DropKind::Hang))
                        && outcome != WaitOutcome::Killed
                    {
                        // The hang reached its ceiling: a timeout.
                        if *this.grpc {
                            let res = respond::error(ErrorKind::Timeout, inj.rule_id(), true);
                            *this.injection = Some(inj);
                            this.state.set(State::Ready { res: Some(res) });
                            continue;
                        }
                        return Poll::Ready(Err(error_of(&inj)));
                    }
                    *this.injection = Some(inj);
                    let (Some(mut svc), Some(req)) = (svc.take(), req.take()) else {
                        panic!("future polled after completion");
                    };
                    this.state.set(State::Called { fut: svc.call(req) });
                }
                StateProj::Ready { res } => {
                    let res = res.take().expect("future polled after completion");
                    return Poll::Ready(Ok(finish(res, this.injection.take(), this.shared)));
                }
                StateProj::Failed { err } => {
                    return Poll::Ready(Err(err.take().expect("future polled after completion")));
                }
            }
        }
    }
}

/// Marks an injected response and applies a body fault.
fn finish<ResB: ChaosBody>(
    res: Response<ResB>,
    injection: Option<Injection>,
    sh: &'static Shared,
) -> Response<ResB> {
    respond::finish(res, injection, sh.injected_header.as_ref())
}
