use std::fmt;
use std::task::{Context, Poll};
use std::time::Instant;

use chaos_core::rules::{DropKind, Fault};
use chaos_core::{ChaosContext, ChaosFutureExt, Decision, Injection, Point, RequestView};
use http::{Request, Response};
use tower_service::Service;

use super::future::{ResponseFuture, State};
use super::layer::Shared;
use crate::body::ChaosBody;
use crate::respond;

/// The server-side chaos middleware, made by [`ChaosLayer`](crate::ChaosLayer).
///
/// Per request it reads the chaos headers, puts the [`ChaosContext`] in the request's
/// extensions and runs the inner service inside the context's task-local scope, asks the
/// engine for a decision, and applies the fault, if any, as a response (so the error type
/// stays the inner service's). See the [crate docs](crate).
#[derive(Clone)]
pub struct ChaosService<S> {
    pub(crate) inner: S,
    pub(crate) shared: &'static Shared,
}

impl<S: fmt::Debug> fmt::Debug for ChaosService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosService")
            .field("inner", &self.inner)
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl<S> ChaosService<S> {
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for ChaosService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ResB: ChaosBody,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let sh = self.shared;
        let chaos = &sh.chaos;
        let mut ctx = chaos.context_from_headers(req.headers());
        #[cfg(feature = "otel")]
        if ctx.is_none() {
            ctx = crate::baggage::context(chaos, req.headers());
        }
        if sh.trust_boundary {
            ctx = crate::server::strip_untrusted(req.headers_mut(), ctx);
        }
        let armed = chaos.is_armed();
        let mut started = None;
        let decision = if armed {
            started = Some(Instant::now());
            chaos.decide(
                &RequestView::new(Point::Server, &sh.target)
                    .method(req.method())
                    .uri(req.uri())
                    .headers(req.headers())
                    .context(ctx.as_ref()),
            )
        } else {
            Decision::Pass
        };
        if let Some(c) = &ctx {
            req.extensions_mut().insert(c.clone());
        }
        let state = match decision {
            Decision::Pass => State::Called {
                fut: call_in(&mut self.inner, req, ctx),
            },
            Decision::Inject(inj) => return self.inject(inj, req, ctx, started),
        };
        ResponseFuture::new(state, sh, started, None)
    }
}

/// Calls `svc` inside the context's scope (so even work done in `call` sees it).
#[inline]
pub(crate) fn call_in<S, R>(
    svc: &mut S,
    req: R,
    ctx: Option<ChaosContext>,
) -> chaos_core::context::WithContext<S::Future>
where
    S: Service<R>,
{
    match ctx {
        None => svc.call(req).with_chaos_context(None),
        Some(c) => {
            let fut = c.clone().sync_scope(|| svc.call(req));
            fut.with_chaos_context(Some(c))
        }
    }
}

impl<S> ChaosService<S> {
    #[cold]
    #[inline(never)]
    fn inject<ReqB, ResB>(
        &mut self,
        inj: Injection,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        started: Option<Instant>,
    ) -> ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
        ResB: ChaosBody,
    {
        let sh = self.shared;
        let grpc = respond::is_grpc(req.headers());
        let (state, inj) = match inj.fault() {
            Fault::Delay(_) | Fault::Drop(DropKind::Hang) | Fault::Pause(_) => {
                // Keep the readiness reservation: call the instance that was made ready
                // after the wait, and leave a fresh clone in its place (tower's AsyncFilter).
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                (State::waiting(inj, svc, req, ctx), None)
            }
            Fault::Body(_) => (
                State::Called {
                    fut: call_in(&mut self.inner, req, ctx),
                },
                Some(inj),
            ),
            Fault::Abort(a) => {
                let res = respond::abort::<ResB>(a, inj.rule_id(), grpc);
                (State::Ready { res: Some(res) }, Some(inj))
            }
            Fault::Error(k) => {
                let res = respond::error::<ResB>(*k, inj.rule_id(), grpc);
                (State::Ready { res: Some(res) }, Some(inj))
            }
            // `drop: reset` and any fault this version does not know: the connection is
            // dropped. The body takes the injection along.
            _ => {
                let res = respond::dropped(inj, sh.injected_header.as_ref());
                return ResponseFuture::new(State::Ready { res: Some(res) }, sh, started, None)
                    .dropped();
            }
        };
        ResponseFuture::new(state, sh, started, inj).injected()
    }
}
