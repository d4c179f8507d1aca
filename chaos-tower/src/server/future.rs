//! The server layer's response future: the shared exchange, and what its end means at a
//! server.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use chaos_core::context::WithContext;
use chaos_core::observe::Touching;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::Shared;
use crate::body::ChaosBody;
use crate::future::{Done, Exchange, InScope, record_passed};
use crate::handle::Handle;
use crate::respond;

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
        exchange: Exchange<S, ReqB, Touching<WithContext<S::Future>>, S::Response, InScope>,
        // While the engine is armed: the attribution header and the steady state.
        settings: Option<Handle<Shared>>,
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    #[inline]
    pub(crate) fn new(
        exchange: Exchange<S, ReqB, Touching<WithContext<S::Future>>, S::Response, InScope>,
        settings: Option<Handle<Shared>>,
    ) -> Self {
        ResponseFuture { exchange, settings }
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

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: ChaosBody,
{
    type Output = Result<Response<ResB>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let sh = this.settings.as_deref();
        let rec = sh.map(|s| (&s.chaos, &*s.steady));
        if let Some((mut call, obs)) = this.exchange.as_mut().passing() {
            let out = ready!(call.as_mut().poll(cx));
            record_passed::<S, ReqB, _, InScope, _, _>(rec, obs, call, &out);
            return Poll::Ready(out);
        }
        let done = ready!(this.exchange.poll_done(cx, rec));
        Poll::Ready(done.map(|d| answer(d, sh)))
    }
}

/// What the end of an exchange is at a server: always a response, so the service's error
/// type stays the inner one. A failure drops the connection.
fn answer<B: ChaosBody>(done: Done<Response<B>>, sh: Option<&Shared>) -> Response<B> {
    let header = sh.and_then(|s| s.injected_header.as_ref());
    match done {
        Done::Called(res, None) => res,
        Done::Called(res, Some(inj)) => respond::finish(res, inj, header),
        Done::Respond(inj, res) => respond::synthesized(res, &inj, header),
        Done::Fail(inj, _) => respond::dropped(inj, header),
    }
}
