use std::task::{Context, Poll};

use chaos_core::observe::Observation;
use chaos_core::{ChaosContext, Decision, HttpSide, Point, RequestView};
use http::{Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::chaos_body::ChaosBody;
use crate::exchange::{Call, Exchange, InScope};
use crate::settings::Settings;

/// The server-side chaos middleware, made by [`ChaosLayer`](crate::ChaosLayer).
///
/// Per request it reads the chaos headers, runs the inner service inside the
/// [`ChaosContext`]'s task-local scope (and, if asked, puts it in the request's
/// extensions), asks the engine for a decision, and applies the fault, if any, as a
/// response (so the error type stays the inner service's). See the [crate docs](crate).
#[derive(Clone)]
pub struct ChaosService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Settings<Shared>,
}

crate::accessors::middleware_accessors!(ChaosService);

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
        let sh = &*self.shared;
        let chaos = &sh.chaos;
        let mut ctx = chaos.inbound_context(req.headers(), req.extensions());
        if sh.trust_boundary {
            ctx = super::strip_untrusted(req.headers_mut(), ctx);
        }
        if chaos.is_armed() {
            return self.call_armed(req, ctx);
        }
        if sh.extension
            && let Some(c) = &ctx
        {
            req.extensions_mut().insert(c.clone());
        }
        match ctx {
            None => ResponseFuture::plain(self.inner.call(req)),
            Some(c) => ResponseFuture::scoped(Self::call_in(&mut self.inner, req, c)),
        }
    }
}

impl<S> ChaosService<S> {
    /// A request while the engine is armed: decide, and record the outcome.
    #[inline]
    fn call_armed<ReqB, ResB>(
        &mut self,
        mut req: Request<ReqB>,
        ctx: Option<ChaosContext>,
    ) -> ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
        ResB: ChaosBody,
    {
        let sh = &*self.shared;
        let mut obs = sh.chaos.observe_sampled(&sh.steady);
        let decision = sh.chaos.decide_observed(
            &RequestView::new(Point::Server, &sh.target)
                .method(req.method())
                .uri(req.uri())
                .headers(req.headers())
                .context(ctx.as_ref()),
            obs.as_mut(),
        );
        if sh.extension
            && let Some(c) = &ctx
        {
            req.extensions_mut().insert(c.clone());
        }
        let settings = self.shared.clone();
        let svc = &mut self.inner;
        match decision {
            // The common cases, the inner future held as it is (see `future`).
            Decision::Pass if !obs.as_ref().is_some_and(Observation::wants_scope) => match ctx {
                None => ResponseFuture::observed(svc.call(req), obs, settings),
                Some(c) => {
                    ResponseFuture::observed_scoped(Self::call_in(svc, req, c), obs, settings)
                }
            },
            Decision::Pass => {
                let fut = InScope::call(svc, req, ctx, obs.as_mut());
                ResponseFuture::exchange(Exchange::called(fut, obs), settings)
            }
            Decision::Inject(inj) => ResponseFuture::exchange(
                Exchange::injected(inj, svc, req, ctx, HttpSide::Server, obs),
                settings,
            ),
        }
    }

    /// The inner call inside the request's context, so even work done in `call` sees it.
    #[inline(never)]
    fn call_in<ReqB>(
        svc: &mut S,
        req: Request<ReqB>,
        ctx: ChaosContext,
    ) -> TaskLocalFuture<ChaosContext, S::Future>
    where
        S: Service<Request<ReqB>>,
    {
        let fut = ctx.clone().sync_scope(|| svc.call(req));
        ctx.scope(fut)
    }
}
