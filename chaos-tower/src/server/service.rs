use std::fmt;
use std::task::{Context, Poll};

use chaos_core::{ChaosContext, ChaosFutureExt, Decision, HttpSide, Point, RequestView};
use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::body::ChaosBody;
use crate::future::Exchange;
use crate::handle::Handle;

/// The server-side chaos middleware, made by [`ChaosLayer`](crate::ChaosLayer).
///
/// Per request it reads the chaos headers, puts the [`ChaosContext`] in the request's
/// extensions and runs the inner service inside the context's task-local scope, asks the
/// engine for a decision, and applies the fault, if any, as a response (so the error type
/// stays the inner service's). See the [crate docs](crate).
#[derive(Clone)]
pub struct ChaosService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Handle<Shared>,
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
        let sh = &*self.shared;
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
        let decision = if armed {
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
        let settings = armed.then(|| self.shared.clone());
        let exchange = Exchange::start(
            decision,
            &mut self.inner,
            req,
            ctx,
            call_in,
            HttpSide::Server,
            armed,
        );
        ResponseFuture::new(exchange, settings)
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
