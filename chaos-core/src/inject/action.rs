//! What an adapter does with an injection: the one mapping from a fault to an action at a
//! point, so no adapter decides anew what a fault means.

use super::{FaultKind, InjectedFault, Injection, Wait};
use crate::rules::{DropKind, Fault};

/// What a point without a protocol of its own does with an injection (a SQL statement, a
/// connection attempt, any async work): from [`Injection::action`].
///
/// | fault | action |
/// |---|---|
/// | `delay`, `drop: hang`, pause point | [`Action::Wait`], then the work |
/// | `error: KIND` | [`Action::Fail`] ([`InjectedFault::error_kind`], [`InjectedFault::sqlstate`]) |
/// | `abort` | [`Action::Fail`] carrying the status ([`InjectedFault::abort`]) |
/// | `drop: reset` | [`Action::Fail`] ([`InjectedFault::is_reset`]) |
/// | `body` | [`Action::Proceed`]: nothing to do where there is no body |
#[derive(Debug)]
pub enum Action {
    /// Hold the work back until the wait ends; then do it, or fail with the wait's error
    /// (a hang that reached `limits.max_hang`).
    Wait(Wait),
    /// Do not do the work: fail with this error.
    Fail(InjectedFault),
    /// Do the work as it is; keep the injection until it is done.
    Proceed(Injection),
}

/// Which end of an HTTP exchange an adapter is (see [`Injection::http_action`]).
#[cfg(feature = "http-body")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpSide {
    /// A server layer: it answers, or drops the connection.
    Server,
    /// A client adapter: it returns a response, or an error to its caller.
    Client,
}

/// What an HTTP point does with an injection: from [`Injection::http_action`] (feature
/// `http-body`).
///
/// | fault | server | client |
/// |---|---|---|
/// | `delay`, `drop: hang`, pause point | [`HttpAction::Wait`], then the call | the same |
/// | `abort` | [`HttpAction::Respond`] with the rule's status, body and headers (gRPC: trailers-only) | the same |
/// | `error: KIND` | [`HttpAction::Respond`]: 503, 504 or 500 (gRPC 14, 4, 13) | gRPC: the same; else [`HttpAction::Fail`] |
/// | `drop: reset` | [`HttpAction::Fail`]: drop the connection | gRPC: a trailers-only `UNAVAILABLE`; else [`HttpAction::Fail`] |
/// | `body` | [`HttpAction::WrapBody`] | the same |
///
/// When a [`Wait`] ends in `Err` (a hang at its ceiling), [`Injection::http_timed_out`]
/// says what to do instead. An injection acted on after the kill switch turned on
/// (decided before it) is a [`HttpAction::Wait`] that ends at once, whatever its fault.
#[cfg(feature = "http-body")]
#[derive(Debug)]
pub enum HttpAction {
    /// Hold the call back until the wait ends; then make it.
    Wait(Wait),
    /// Answer with this response instead of making the call. Mark it with the rule
    /// ([`respond::mark`](crate::respond::mark)).
    Respond(Injection, http::Response<bytes::Bytes>),
    /// Fail: a server drops the connection ([`FaultBody::reset`](crate::body::FaultBody::reset)),
    /// a client returns the error.
    Fail(Injection, InjectedFault),
    /// Make the call, then wrap the response body ([`FaultBody::new`](crate::body::FaultBody::new)).
    WrapBody(Injection),
}

impl Injection {
    /// What to do at a point without a protocol of its own: see [`Action`].
    ///
    /// ```
    /// use chaos_core::{Action, Chaos, Decision, Point, RequestView};
    /// use chaos_core::rules::{ErrorKind, Fault, Rule};
    ///
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("db", "sql", Fault::Error("sqlstate:40001".parse().unwrap()))).unwrap();
    /// let Decision::Inject(inj) = chaos.decide(&RequestView::new(Point::Sql, "orders")) else { unreachable!() };
    /// match inj.action() {
    ///     Action::Fail(e) => assert_eq!(e.sqlstate(), Some("40001")),
    ///     other => unreachable!("{other:?}"),
    /// }
    /// ```
    pub fn action(self) -> Action {
        if self.is_killed() {
            // Killed since the decision: the work goes on untouched.
            return Action::Proceed(self);
        }
        let kind = match &*self.i.fault {
            Fault::Delay(_) | Fault::Drop(DropKind::Hang) => return Action::Wait(Wait::new(self)),
            Fault::Body(_) => return Action::Proceed(self),
            Fault::Error(k) => FaultKind::Error(*k),
            Fault::Abort(a) => FaultKind::Abort(a.kind),
            // `drop: reset`, and any fault this version does not know: the connection broke.
            _ => FaultKind::Reset,
        };
        Action::Fail(self.error(kind))
    }

    /// What to do at an HTTP point: see [`HttpAction`]. `grpc` says whether the request is
    /// gRPC ([`respond::is_grpc`](crate::respond::is_grpc)).
    #[cfg(feature = "http-body")]
    pub fn http_action(self, side: HttpSide, grpc: bool) -> HttpAction {
        use crate::respond;
        let answers_errors = side == HttpSide::Server || grpc;
        if self.is_killed() {
            // Killed since the decision: a wait that ends at once, then the call.
            return HttpAction::Wait(Wait::ready(self));
        }
        match &*self.i.fault {
            Fault::Delay(_) | Fault::Drop(DropKind::Hang) => HttpAction::Wait(Wait::new(self)),
            Fault::Body(_) => HttpAction::WrapBody(self),
            Fault::Abort(a) => {
                let res = respond::abort(a, self.rule_id(), grpc);
                HttpAction::Respond(self, res)
            }
            Fault::Error(k) if answers_errors => {
                let res = respond::error(*k, self.rule_id(), grpc);
                HttpAction::Respond(self, res)
            }
            Fault::Error(k) => {
                let e = self.error(FaultKind::Error(*k));
                HttpAction::Fail(self, e)
            }
            _ if side == HttpSide::Client && grpc => {
                let res =
                    respond::error(crate::rules::ErrorKind::Unavailable, self.rule_id(), true);
                HttpAction::Respond(self, res)
            }
            // `drop: reset`, and any fault this version does not know.
            _ => {
                let e = self.reset_error();
                HttpAction::Fail(self, e)
            }
        }
    }

    /// What to do at an HTTP point when a [`Wait`] ended in `fault` (a hang at its
    /// ceiling): a server drops the connection; a client answers a gRPC call with a
    /// trailers-only `DEADLINE_EXCEEDED` and fails any other with the timeout.
    #[cfg(feature = "http-body")]
    pub fn http_timed_out(self, fault: InjectedFault, side: HttpSide, grpc: bool) -> HttpAction {
        if side == HttpSide::Client && grpc {
            let res = crate::respond::error(crate::rules::ErrorKind::Timeout, self.rule_id(), true);
            return HttpAction::Respond(self, res);
        }
        HttpAction::Fail(self, fault)
    }
}
