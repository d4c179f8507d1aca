//! The state machine both layers' response futures share: from a decision to a finished
//! exchange. The server and the client differ only in what they make of the end
//! ([`Done`]): each has one function for that.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use chaos_core::steady::SteadyState;
use chaos_core::{ChaosContext, Decision, HttpAction, HttpSide, InjectedFault, Injection, Wait};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::respond;

/// How an exchange ended, before the side makes it a response or an error.
pub(crate) enum Done<R> {
    /// The inner service answered; mark it (and wrap its body) with the injection, if any.
    Called(R, Option<Injection>),
    /// Answer with this response instead.
    Respond(Injection, Response<bytes::Bytes>),
    /// Fail: a server drops the connection, a client returns the error.
    Fail(Injection, InjectedFault),
}

/// Makes the inner call: the server runs it inside the request's context scope.
pub(crate) type CallFn<S, ReqB, C> = fn(&mut S, Request<ReqB>, Option<ChaosContext>) -> C;

pin_project! {
    pub(crate) struct Waiting<S, ReqB, C> {
        #[pin]
        wait: Wait,
        svc: Option<S>,
        req: Option<Request<ReqB>>,
        ctx: Option<ChaosContext>,
        call: CallFn<S, ReqB, C>,
        side: HttpSide,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<S, ReqB, C, R> {
        Called { #[pin] fut: C, injection: Option<Injection> },
        // Boxed, so the future stays small on the path that passes.
        Waiting { waiting: Pin<Box<Waiting<S, ReqB, C>>> },
        Done { done: Option<Done<R>> },
    }
}

pin_project! {
    /// One exchange: the call, or the injection's wait, answer or failure in its place.
    pub(crate) struct Exchange<S, ReqB, C, R> {
        #[pin]
        state: State<S, ReqB, C, R>,
        // Set while the engine is armed: the exchange's outcome is recorded.
        started: Option<Instant>,
        injected: bool,
    }
}

impl<S, ReqB, C, R> Exchange<S, ReqB, C, R>
where
    S: Service<Request<ReqB>> + Clone,
{
    /// Starts the exchange the decision asks for. `observe`: record its outcome.
    #[inline]
    pub(crate) fn start(
        decision: Decision,
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        call: CallFn<S, ReqB, C>,
        side: HttpSide,
        observe: bool,
    ) -> Self {
        let started = observe.then(Instant::now);
        match decision {
            Decision::Pass => Exchange {
                state: State::Called {
                    fut: call(svc, req, ctx),
                    injection: None,
                },
                started,
                injected: false,
            },
            Decision::Inject(inj) => Self::inject(inj, svc, req, ctx, call, side, started),
        }
    }

    #[cold]
    #[inline(never)]
    fn inject(
        inj: Injection,
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        call: CallFn<S, ReqB, C>,
        side: HttpSide,
        started: Option<Instant>,
    ) -> Self {
        let grpc = respond::is_grpc(req.headers());
        let state = match inj.http_action(side, grpc) {
            HttpAction::Wait(wait) => {
                // Keep the readiness reservation: call the instance that was made ready
                // after the wait, and leave a fresh clone in its place (tower's AsyncFilter).
                let clone = svc.clone();
                let svc = std::mem::replace(svc, clone);
                State::Waiting {
                    waiting: Box::pin(Waiting {
                        wait,
                        svc: Some(svc),
                        req: Some(req),
                        ctx,
                        call,
                        side,
                        grpc,
                    }),
                }
            }
            other => ended(other, svc, req, ctx, call),
        };
        Exchange {
            state,
            started,
            injected: true,
        }
    }
}

/// The state for an action that does not wait.
fn ended<S, ReqB, C, R>(
    action: HttpAction,
    svc: &mut S,
    req: Request<ReqB>,
    ctx: Option<ChaosContext>,
    call: CallFn<S, ReqB, C>,
) -> State<S, ReqB, C, R> {
    match action {
        HttpAction::WrapBody(inj) => State::Called {
            fut: call(svc, req, ctx),
            injection: Some(inj),
        },
        HttpAction::Respond(inj, res) => State::Done {
            done: Some(Done::Respond(inj, res)),
        },
        HttpAction::Fail(inj, fault) => State::Done {
            done: Some(Done::Fail(inj, fault)),
        },
        // Only a decision starts a wait; what follows one never does. Waiting again
        // would never end: fail as the hang did.
        HttpAction::Wait(wait) => {
            let inj = wait.into_injection();
            let fault = inj.timeout_error();
            State::Done {
                done: Some(Done::Fail(inj, fault)),
            }
        }
    }
}

impl<S, ReqB, C, ResB, E> Exchange<S, ReqB, C, Response<ResB>>
where
    C: Future<Output = Result<Response<ResB>, E>>,
{
    /// Polls the exchange to its end; records the outcome in `steady` when observed.
    #[inline]
    pub(crate) fn poll_done(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        steady: Option<&SteadyState>,
    ) -> Poll<Result<Done<Response<ResB>>, E>> {
        let mut this = self.project();
        loop {
            let out = match this.state.as_mut().project() {
                StateProj::Called { fut, injection } => {
                    let out = ready!(fut.poll(cx));
                    out.map(|res| Done::Called(res, injection.take()))
                }
                StateProj::Waiting { waiting } => {
                    let w = waiting.as_mut().project();
                    let (inj, waited) = ready!(w.wait.poll(cx));
                    let (Some(mut svc), Some(req)) = (w.svc.take(), w.req.take()) else {
                        panic!("future polled after completion");
                    };
                    let (ctx, call) = (w.ctx.take(), *w.call);
                    let next = match waited {
                        Ok(()) => State::Called {
                            fut: call(&mut svc, req, ctx),
                            injection: Some(inj),
                        },
                        Err(fault) => ended(
                            inj.http_timed_out(fault, *w.side, *w.grpc),
                            &mut svc,
                            req,
                            ctx,
                            call,
                        ),
                    };
                    this.state.set(next);
                    continue;
                }
                StateProj::Done { done } => {
                    Ok(done.take().expect("future polled after completion"))
                }
            };
            if let (Some(start), Some(steady)) = (*this.started, steady) {
                let error = match &out {
                    Err(_) | Ok(Done::Fail(..)) => true,
                    Ok(Done::Called(res, _)) => respond::is_error(res),
                    Ok(Done::Respond(_, res)) => respond::is_error(res),
                };
                steady.record(start, error, *this.injected);
            }
            return Poll::Ready(out);
        }
    }
}
