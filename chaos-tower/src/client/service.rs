//! The client-side service: forwards the context, decides, and starts the exchange.

use std::task::{Context, Poll};

use chaos_core::steady::SteadyState;
use chaos_core::{ChaosContext, HttpSide, OutboundCall, Point, RequestView};
use http::{Request, Response};
use tower_service::Service;

use super::{ChaosResponseBody, ResponseFuture, Shared};
use crate::exchange::Exchange;
use crate::settings::Settings;
use chaos_core::BoxError;

/// The client-side chaos middleware, made by [`ChaosClientLayer`](super::ChaosClientLayer).
#[derive(Clone)]
pub struct ChaosClient<S> {
    pub(super) inner: S,
    pub(super) shared: Settings<Shared>,
}

crate::accessors::middleware_accessors!(ChaosClient);

impl<S, ReqB, ResB> Service<Request<ReqB>> for ChaosClient<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = bytes::Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ChaosResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let sh = &*self.shared;
        // The call's own context is cloned (an `Arc`) so the request can take the
        // forwarded headers.
        let own = req.extensions().get::<ChaosContext>().cloned();
        let (decision, obs) = sh.chaos.outbound(
            own.as_ref(),
            &mut Call {
                req: &mut req,
                target: &sh.target,
                forward: sh.forward,
                steady: &sh.steady,
            },
        );
        let settings = obs.as_ref().map(|_| self.shared.clone());
        let exchange = Exchange::start(decision, &mut self.inner, req, None, HttpSide::Client, obs);
        ResponseFuture::new(exchange, settings)
    }
}

/// A request on its way out, as the engine's outbound sequence sees it.
struct Call<'r, B> {
    req: &'r mut Request<B>,
    target: &'r str,
    forward: bool,
    steady: &'r SteadyState,
}

impl<B> OutboundCall for Call<'_, B> {
    fn forward(&mut self, ctx: &ChaosContext) {
        if self.forward {
            ctx.forward_to(self.req.headers_mut());
        }
    }

    fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a> {
        RequestView::new(Point::Client, self.target)
            .method(self.req.method())
            .uri(self.req.uri())
            .headers(self.req.headers())
            .context(ctx)
    }

    fn steady_state(&self) -> Option<&SteadyState> {
        Some(self.steady)
    }
}
