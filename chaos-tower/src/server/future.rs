//! The server layer's response future: the inner call as it is while the engine is not
//! armed, the call observed while it is and nothing is injected, else the shared
//! exchange, and what its end means at a server.
//!
//! Each common case is one variant holding the inner future directly: every layer of
//! wrapping is a copy of the whole future when a request starts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use chaos_core::ChaosContext;
use chaos_core::context::WithContext;
use chaos_core::observe::{Observation, Touching};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

use super::layer::Shared;
use crate::answers;
use crate::chaos_body::ChaosBody;
use crate::exchange::{Done, Exchange, InScope, record_passed};
use crate::settings::Settings;

/// The exchange an armed engine's request goes through when something is injected, or
/// its hops need a scope for their touches.
pub(crate) type ServerExchange<S, ReqB> = Exchange<
    S,
    ReqB,
    Touching<WithContext<<S as Service<Request<ReqB>>>::Future>>,
    <S as Service<Request<ReqB>>>::Response,
    InScope,
>;

pin_project! {
    /// Response future of [`ChaosService`](crate::ChaosService).
    ///
    /// When nothing is injected it only polls the inner service's future: no box, no
    /// allocation. Dropping it mid-delay or mid-hang cancels the request cleanly and frees
    /// the rule's concurrency slot.
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        kind: Kind<S, ReqB>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        // The engine is not armed: the inner call as it is,
        Plain { #[pin] fut: S::Future },
        // or in the request's context.
        Scoped { #[pin] fut: TaskLocalFuture<ChaosContext, S::Future> },
        // Armed, nothing injected, no scope for hops: the call, its outcome recorded.
        Observed {
            #[pin]
            fut: S::Future,
            obs: Option<Observation>,
            settings: Settings<Shared>,
        },
        // The same in the request's context.
        ObservedScoped {
            #[pin]
            fut: TaskLocalFuture<ChaosContext, S::Future>,
            obs: Option<Observation>,
            settings: Settings<Shared>,
        },
        // Anything else: an injection, or a scope for the touches of the request's hops.
        Exchange {
            #[pin]
            exchange: ServerExchange<S, ReqB>,
            settings: Settings<Shared>,
        },
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    /// The inner call and nothing else.
    #[inline]
    pub(crate) fn plain(fut: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Plain { fut },
        }
    }

    /// The inner call in the request's context.
    #[inline]
    pub(crate) fn scoped(fut: TaskLocalFuture<ChaosContext, S::Future>) -> Self {
        ResponseFuture {
            kind: Kind::Scoped { fut },
        }
    }

    /// The inner call, its outcome recorded in `obs` with `settings`.
    #[inline]
    pub(crate) fn observed(
        fut: S::Future,
        obs: Option<Observation>,
        settings: Settings<Shared>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Observed { fut, obs, settings },
        }
    }

    /// The same, in the request's context.
    #[inline]
    pub(crate) fn observed_scoped(
        fut: TaskLocalFuture<ChaosContext, S::Future>,
        obs: Option<Observation>,
        settings: Settings<Shared>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::ObservedScoped { fut, obs, settings },
        }
    }

    /// An armed engine's exchange, recorded with `settings`.
    #[inline]
    pub(crate) fn exchange(exchange: ServerExchange<S, ReqB>, settings: Settings<Shared>) -> Self {
        ResponseFuture {
            kind: Kind::Exchange { exchange, settings },
        }
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Records an observed call's outcome.
#[inline]
fn record<B, E>(obs: &mut Option<Observation>, sh: &Shared, out: &Result<Response<B>, E>) {
    if let Some(o) = obs.take() {
        let error = out.as_ref().map_or(true, answers::is_error);
        o.finish(&sh.chaos, &sh.steady, error, false);
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: ChaosBody,
{
    type Output = Result<Response<ResB>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut exchange, sh) = match self.project().kind.project() {
            KindProj::Plain { fut } => return fut.poll(cx),
            KindProj::Scoped { fut } => return fut.poll(cx),
            KindProj::Observed { fut, obs, settings } => {
                let out = ready!(fut.poll(cx));
                record(obs, settings, &out);
                return Poll::Ready(out);
            }
            KindProj::ObservedScoped { fut, obs, settings } => {
                let out = ready!(fut.poll(cx));
                record(obs, settings, &out);
                return Poll::Ready(out);
            }
            KindProj::Exchange { exchange, settings } => (exchange, &**settings),
        };
        let rec = Some((&sh.chaos, &*sh.steady));
        if let Some((mut call, obs)) = exchange.as_mut().passing() {
            let out = ready!(call.as_mut().poll(cx));
            record_passed::<S, ReqB, _, InScope, _, _>(rec, obs, call, &out);
            return Poll::Ready(out);
        }
        let done = ready!(exchange.poll_done(cx, rec));
        Poll::Ready(done.map(|d| answer(d, sh)))
    }
}

/// What the end of an exchange is at a server: always a response, so the service's error
/// type stays the inner one. A failure drops the connection.
fn answer<B: ChaosBody>(done: Done<Response<B>>, sh: &Shared) -> Response<B> {
    let header = sh.injected_header.as_ref();
    match done {
        Done::Called(res, None) => res,
        Done::Called(res, Some(inj)) => answers::finish(res, inj, header),
        Done::Respond(inj, res) => answers::synthesized(res, &inj, header),
        Done::Fail(inj, _) => answers::dropped(inj, header),
    }
}
