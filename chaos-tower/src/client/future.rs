//! The client layer's response future: the shared exchange, and what its end means for a
//! caller.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use chaos_core::body::FaultBody;
use chaos_core::rules::Fault;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Shared;
use super::body::ChaosResponseBody;
use crate::answers;
use crate::exchange::{Done, Exchange, Plain, record_passed};
use crate::settings::Settings;
use chaos_core::BoxError;

pin_project! {
    /// Response future of [`ChaosClient`](super::ChaosClient): the inner future, unboxed,
    /// when nothing is injected.
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        exchange: Exchange<S, ReqB, S::Future, S::Response, Plain>,
        // While the engine is armed: the attribution header and the steady state.
        settings: Option<Settings<Shared>>,
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn new(
        exchange: Exchange<S, ReqB, S::Future, S::Response, Plain>,
        settings: Option<Settings<Shared>>,
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
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = bytes::Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<ChaosResponseBody<ResB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let sh = this.settings.as_deref();
        let rec = sh.map(|s| (&s.chaos, &*s.steady));
        if let Some((mut call, obs)) = this.exchange.as_mut().passing() {
            let out = ready!(call.as_mut().poll(cx));
            record_passed::<S, ReqB, _, Plain, _, _>(rec, obs, call, &out);
            let res = out.map_err(Into::into)?;
            return Poll::Ready(Ok(res.map(ChaosResponseBody::inner)));
        }
        let done = ready!(this.exchange.poll_done(cx, rec));
        Poll::Ready(done.map_err(Into::into).and_then(|d| answer(d, sh)))
    }
}

/// What the end of an exchange is for a caller: a response, or an error.
fn answer<B>(
    done: Done<Response<B>>,
    sh: Option<&Shared>,
) -> Result<Response<ChaosResponseBody<B>>, BoxError> {
    let header = sh.and_then(|s| s.injected_header.as_ref());
    Ok(match done {
        Done::Called(res, None) => res.map(ChaosResponseBody::inner),
        Done::Called(mut res, Some(inj)) => {
            answers::mark(&mut res, header, inj.rule_id());
            if let Fault::Body(_) = inj.fault() {
                res.map(|b| ChaosResponseBody::fault(FaultBody::new(b, inj)))
            } else {
                res.map(ChaosResponseBody::inner)
            }
        }
        Done::Respond(inj, mut res) => {
            answers::mark(&mut res, header, inj.rule_id());
            res.map(ChaosResponseBody::full)
        }
        Done::Fail(_, fault) => return Err(Box::new(fault)),
    })
}
