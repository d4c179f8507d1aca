//! The client-side service: forwards the context, decides, and starts the exchange.

use std::task::{Context, Poll};

use chaos_core::{ChaosContext, Decision, HttpSide, Point, RequestView};
use http::{Request, Response};
use tower_service::Service;

use super::{ChaosResponseBody, ResponseFuture, Shared};
use crate::BoxError;
use crate::exchange::Exchange;
use crate::settings::Settings;

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
        let ext = req.extensions().get::<ChaosContext>().cloned();
        let (decision, obs) = ChaosContext::with_current(|cur| {
            let ctx = ext.as_ref().or(cur);
            // Else the current OpenTelemetry context's baggage (feature `otel`), as the
            // reqwest middleware does.
            #[cfg(feature = "otel")]
            let from_otel = match ctx {
                None => sh.chaos.context_from_current_otel(),
                Some(_) => None,
            };
            #[cfg(feature = "otel")]
            let ctx = ctx.or(from_otel.as_ref());
            if sh.forward
                && let Some(c) = ctx
            {
                c.forward_to(req.headers_mut());
            }
            let mut obs = sh.chaos.observe()?;
            let view = RequestView::new(Point::Client, &sh.target)
                .method(req.method())
                .uri(req.uri())
                .headers(req.headers())
                .context(ctx);
            Some((sh.chaos.decide_observed(&view, Some(&mut obs)), obs))
        })
        .map_or((Decision::Pass, None), |(d, o)| (d, Some(o)));
        let settings = obs.as_ref().map(|_| self.shared.clone());
        let exchange = Exchange::start(decision, &mut self.inner, req, None, HttpSide::Client, obs);
        ResponseFuture::new(exchange, settings)
    }
}
