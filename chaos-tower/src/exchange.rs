//! The state machine both layers' response futures share: from a decision to a finished
//! exchange. The server and the client differ only in what they make of the end
//! ([`Done`]): each has one function for that.

use chaos_core::context::WithContext;
use chaos_core::observe::{Touches, Touching};
use chaos_core::steady::SteadyState;
use chaos_core::{
    Chaos, ChaosContext, ChaosFutureExt, Decision, HttpAction, HttpSide, InjectedFault, Injection,
    Observation, Wait,
};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_service::Service;

use crate::answers;

/// How an exchange ended, before the side makes it a response or an error.
pub(crate) enum Done<R> {
    /// The inner service answered; mark it (and wrap its body) with the injection, if any.
    Called(R, Option<Injection>),
    /// Answer with this response instead.
    Respond(Injection, Response<bytes::Bytes>),
    /// Fail: a server drops the connection, a client returns the error.
    Fail(Injection, InjectedFault),
}

/// Makes the inner call: the server runs it inside the request's context scope, with the
/// request's touches (the rules its hops match) in scope. A type, not a function pointer,
/// so the call on the path that passes is inlined.
pub(crate) trait Call<S, ReqB, C> {
    fn call(
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        obs: Option<&mut Observation>,
    ) -> C;

    /// The touches lent to the call's scope, back once it is done.
    fn take_touches(fut: Pin<&mut C>) -> Option<Touches>;
}

/// Where an observed exchange records: the engine (for the cohorts and guards) and the
/// layer's steady state.
pub(crate) type Recorder<'a> = Option<(&'a Chaos, &'a SteadyState)>;

pin_project! {
    pub(crate) struct Waiting<S, ReqB> {
        #[pin]
        wait: Wait,
        svc: Option<S>,
        req: Option<Request<ReqB>>,
        ctx: Option<ChaosContext>,
        side: HttpSide,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<S, ReqB, C, R> {
        Called { #[pin] fut: C, injection: Option<Injection> },
        // Boxed, so the future stays small on the path that passes.
        Waiting { waiting: Pin<Box<Waiting<S, ReqB>>> },
        // Boxed too: an answer made here is large, and only injections have one.
        Done { done: Option<Box<Done<R>>> },
    }
}

pin_project! {
    /// One exchange: the call, or the injection's wait, answer or failure in its place.
    pub(crate) struct Exchange<S, ReqB, C, R, K> {
        #[pin]
        state: State<S, ReqB, C, R>,
        // Set while the engine is armed: the exchange's outcome is recorded.
        obs: Option<Observation>,
        injected: bool,
        call: PhantomData<fn() -> K>,
    }
}

impl<S, ReqB, C, R, K> Exchange<S, ReqB, C, R, K>
where
    S: Service<Request<ReqB>> + Clone,
    K: Call<S, ReqB, C>,
{
    /// Starts the exchange the decision asks for; `obs`: the observation its outcome is
    /// recorded with (while the engine is armed).
    #[inline]
    pub(crate) fn start(
        decision: Decision,
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        side: HttpSide,
        mut obs: Option<Observation>,
    ) -> Self {
        match decision {
            Decision::Pass => Exchange {
                state: State::Called {
                    fut: K::call(svc, req, ctx, obs.as_mut()),
                    injection: None,
                },
                obs,
                injected: false,
                call: PhantomData,
            },
            Decision::Inject(inj) => Self::injected(inj, svc, req, ctx, side, obs),
        }
    }

    /// An exchange whose call (`fut`) is made and nothing injected into.
    #[inline]
    pub(crate) fn called(fut: C, obs: Option<Observation>) -> Self {
        Exchange {
            state: State::Called {
                fut,
                injection: None,
            },
            obs,
            injected: false,
            call: PhantomData,
        }
    }

    /// The exchange an injection makes.
    #[cold]
    #[inline(never)]
    pub(crate) fn injected(
        inj: Injection,
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        side: HttpSide,
        mut obs: Option<Observation>,
    ) -> Self {
        let grpc = answers::is_grpc(req.headers());
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
                        side,
                        grpc,
                    }),
                }
            }
            other => ended::<_, _, _, _, K>(other, svc, req, ctx, obs.as_mut()),
        };
        Exchange {
            state,
            obs,
            injected: true,
            call: PhantomData,
        }
    }
}

/// The state for an action that does not wait.
fn ended<S, ReqB, C, R, K: Call<S, ReqB, C>>(
    action: HttpAction,
    svc: &mut S,
    req: Request<ReqB>,
    ctx: Option<ChaosContext>,
    obs: Option<&mut Observation>,
) -> State<S, ReqB, C, R> {
    match action {
        HttpAction::WrapBody(inj) => State::Called {
            fut: K::call(svc, req, ctx, obs),
            injection: Some(inj),
        },
        HttpAction::Respond(inj, res) => State::Done {
            done: Some(Box::new(Done::Respond(inj, res))),
        },
        HttpAction::Fail(inj, fault) => State::Done {
            done: Some(Box::new(Done::Fail(inj, fault))),
        },
        // Only a decision starts a wait; what follows one never does. Waiting again
        // would never end: fail as the hang did.
        HttpAction::Wait(wait) => {
            let inj = wait.into_injection();
            let fault = inj.timeout_error();
            State::Done {
                done: Some(Box::new(Done::Fail(inj, fault))),
            }
        }
    }
}

impl<S, ReqB, C, R, K> Exchange<S, ReqB, C, R, K> {
    /// The inner call and the exchange's observation, while nothing is injected into it:
    /// the layers poll the call as it is and hand its output on unchanged, recording it
    /// (with [`record_passed`]) when the exchange is observed. Its output is not moved
    /// through [`Done`], the common path of an armed engine as of an unarmed one.
    #[inline]
    pub(crate) fn passing(self: Pin<&mut Self>) -> Option<(Pin<&mut C>, &mut Option<Observation>)> {
        let this = self.project();
        match this.state.project() {
            StateProj::Called {
                fut,
                injection: None,
            } if !*this.injected => Some((fut, this.obs)),
            _ => None,
        }
    }
}

/// Records a passed exchange's outcome, when it was observed.
#[inline]
pub(crate) fn record_passed<S, ReqB, C, K, B, E>(
    rec: Recorder<'_>,
    obs: &mut Option<Observation>,
    fut: Pin<&mut C>,
    out: &Result<Response<B>, E>,
) where
    K: Call<S, ReqB, C>,
{
    if let (Some(mut o), Some((chaos, steady))) = (obs.take(), rec) {
        if let Some(t) = K::take_touches(fut) {
            o.take_back(t);
        }
        let error = out.as_ref().map_or(true, answers::is_error);
        o.finish(chaos, steady, error, false);
    }
}

impl<S, ReqB, C, ResB, E, K> Exchange<S, ReqB, C, Response<ResB>, K>
where
    C: Future<Output = Result<Response<ResB>, E>>,
    K: Call<S, ReqB, C>,
{
    /// Polls the exchange to its end; records the outcome with `rec` when observed.
    #[inline]
    pub(crate) fn poll_done(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        rec: Recorder<'_>,
    ) -> Poll<Result<Done<Response<ResB>>, E>> {
        let mut this = self.project();
        loop {
            let out = match this.state.as_mut().project() {
                StateProj::Called { mut fut, injection } => {
                    let out = ready!(fut.as_mut().poll(cx));
                    if let (Some(o), Some(t)) = (this.obs.as_mut(), K::take_touches(fut)) {
                        o.take_back(t);
                    }
                    out.map(|res| Done::Called(res, injection.take()))
                }
                StateProj::Waiting { waiting } => {
                    let w = waiting.as_mut().project();
                    let (inj, waited) = ready!(w.wait.poll(cx));
                    let (Some(mut svc), Some(req)) = (w.svc.take(), w.req.take()) else {
                        panic!("future polled after completion");
                    };
                    let ctx = w.ctx.take();
                    let next = match waited {
                        Ok(()) => State::Called {
                            fut: K::call(&mut svc, req, ctx, this.obs.as_mut()),
                            injection: Some(inj),
                        },
                        Err(fault) => ended::<_, _, _, _, K>(
                            inj.http_timed_out(fault, *w.side, *w.grpc),
                            &mut svc,
                            req,
                            ctx,
                            this.obs.as_mut(),
                        ),
                    };
                    this.state.set(next);
                    continue;
                }
                StateProj::Done { done } => {
                    Ok(*done.take().expect("future polled after completion"))
                }
            };
            if let (Some(o), Some((chaos, steady))) = (this.obs.take(), rec) {
                let error = match &out {
                    Err(_) | Ok(Done::Fail(..)) => true,
                    Ok(Done::Called(res, _)) => answers::is_error(res),
                    Ok(Done::Respond(_, res)) => answers::is_error(res),
                };
                o.finish(chaos, steady, error, *this.injected);
            }
            return Poll::Ready(out);
        }
    }
}

/// Calls the inner service inside the context's scope (so even work done in `call` sees
/// it), and, for an observed request outside any other, with its touches in scope: the
/// hops inside note the rules they match in the request.
pub(crate) struct InScope;

impl<S, ReqB> Call<S, ReqB, Touching<WithContext<S::Future>>> for InScope
where
    S: Service<Request<ReqB>>,
{
    #[inline(always)]
    fn call(
        svc: &mut S,
        req: Request<ReqB>,
        ctx: Option<ChaosContext>,
        obs: Option<&mut Observation>,
    ) -> Touching<WithContext<S::Future>> {
        let fut = match ctx {
            None => svc.call(req).with_chaos_context(None),
            Some(c) => {
                let fut = c.clone().sync_scope(|| svc.call(req));
                fut.with_chaos_context(Some(c))
            }
        };
        match obs {
            Some(o) if o.wants_scope() => Touching::scoped(o.lend(), fut),
            _ => Touching::plain(fut),
        }
    }

    #[inline]
    fn take_touches(fut: Pin<&mut Touching<WithContext<S::Future>>>) -> Option<Touches> {
        fut.take_touches()
    }
}

/// Calls the inner service as it is (a client has no context scope to enter).
pub(crate) struct Plain;

impl<S, ReqB> Call<S, ReqB, S::Future> for Plain
where
    S: Service<Request<ReqB>>,
{
    #[inline]
    fn call(
        svc: &mut S,
        req: Request<ReqB>,
        _: Option<ChaosContext>,
        _: Option<&mut Observation>,
    ) -> S::Future {
        svc.call(req)
    }

    #[inline]
    fn take_touches(_: Pin<&mut S::Future>) -> Option<Touches> {
        None
    }
}
