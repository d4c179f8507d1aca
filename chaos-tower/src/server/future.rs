//! The server layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use chaos_core::context::WithContext;
use chaos_core::rules::{DropKind, Fault};
use chaos_core::{ChaosContext, Injection, WaitOutcome};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::Shared;
use super::service::call_in;
use crate::body::ChaosBody;
use crate::respond;

type BoxWait = Pin<Box<dyn Future<Output = (Injection, WaitOutcome)> + Send>>;

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
        state: State<S, ReqB>,
        shared: &'static Shared,
        started: Option<Instant>,
        injection: Option<Injection>,
        injected: bool,
        dropped: bool,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Called { #[pin] fut: WithContext<S::Future> },
        // Boxed, so the future stays small on the path that passes.
        Waiting { waiting: Box<Waiting<S, ReqB>> },
        Ready { res: Option<S::Response> },
    }
}

pub(crate) struct Waiting<S, ReqB> {
    wait: BoxWait,
    svc: Option<S>,
    req: Option<Request<ReqB>>,
    ctx: Option<ChaosContext>,
}

impl<S, ReqB> State<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn waiting(
        inj: Injection,
        svc: S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
    ) -> Self {
        State::Waiting {
            waiting: Box::new(Waiting {
                wait: Box::pin(async move {
                    let outcome = inj.wait().await;
                    (inj, outcome)
                }),
                svc: Some(svc),
                req: Some(req),
                ctx,
            }),
        }
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    #[inline]
    pub(crate) fn new(
        state: State<S, ReqB>,
        shared: &'static Shared,
        started: Option<Instant>,
        injection: Option<Injection>,
    ) -> Self {
        ResponseFuture {
            state,
            shared,
            started,
            injected: injection.is_some(),
            injection,
            dropped: false,
        }
    }

    pub(crate) fn injected(mut self) -> Self {
        self.injected = true;
        self
    }

    pub(crate) fn dropped(mut self) -> Self {
        self.dropped = true;
        self.injected = true;
        self
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
    ResB: ChaosBody,
{
    type Output = Result<Response<ResB>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => {
                    let out = ready!(fut.poll(cx));
                    if this.started.is_none() && this.injection.is_none() {
                        return Poll::Ready(out);
                    }
                    let sh = *this.shared;
                    let out = out.map(|res| finish(res, this.injection.take(), sh));
                    if let Some(start) = *this.started {
                        let error = out.as_ref().map_or(true, respond::is_error);
                        sh.steady.record(start, error, *this.injected);
                    }
                    return Poll::Ready(out);
                }
                StateProj::Waiting { waiting } => {
                    let Waiting {
                        wait,
                        svc,
                        req,
                        ctx,
                    } = &mut **waiting;
                    let (inj, outcome) = ready!(wait.as_mut().poll(cx));
                    let sh = *this.shared;
                    *this.injected = true;
                    if matches!(inj.fault(), Fault::Drop(DropKind::Hang))
                        && outcome != WaitOutcome::Killed
                    {
                        // The hang reached its ceiling: drop the connection.
                        let res = respond::dropped(inj, sh.injected_header.as_ref());
                        *this.dropped = true;
                        this.state.set(State::Ready { res: Some(res) });
                        continue;
                    }
                    *this.injection = Some(inj);
                    let (Some(mut svc), Some(req)) = (svc.take(), req.take()) else {
                        panic!("future polled after completion");
                    };
                    let ctx = ctx.take();
                    this.state.set(State::Called {
                        fut: call_in(&mut svc, req, ctx),
                    });
                }
                StateProj::Ready { res } => {
                    let res = res.take().expect("future polled after completion");
                    let sh = *this.shared;
                    let res = finish(res, this.injection.take(), sh);
                    if let Some(start) = *this.started {
                        let error = *this.dropped || respond::is_error(&res);
                        sh.steady.record(start, error, true);
                    }
                    return Poll::Ready(Ok(res));
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
