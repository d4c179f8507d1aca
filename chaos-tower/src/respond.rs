//! Synthesized answers in the layers' body types (built by `chaos_core::respond`), and
//! the marking and body faults of injected responses.

use chaos_core::Injection;
use chaos_core::rules::{Abort, ErrorKind, Fault};
use http::{HeaderName, Response};

use crate::body::{ChaosBody, FaultBody};

pub(crate) use chaos_core::respond::is_grpc;

/// A response of bytes in the body type `B` (an empty body stays `B::default()`).
fn into_body<B: ChaosBody>(res: Response<bytes::Bytes>) -> Response<B> {
    res.map(|b| {
        if b.is_empty() {
            B::default()
        } else {
            B::from_bytes(b)
        }
    })
}

/// The answer to an `abort` fault.
pub(crate) fn abort<B: ChaosBody>(abort: &Abort, rule: &str, grpc: bool) -> Response<B> {
    into_body(chaos_core::respond::abort(abort, rule, grpc))
}

/// The answer to an `error: KIND` fault at an HTTP point: `unavailable` is 503 (gRPC 14),
/// `timeout` 504 (gRPC 4), a SQLSTATE 500 (gRPC 13).
pub(crate) fn error<B: ChaosBody>(kind: ErrorKind, rule: &str, grpc: bool) -> Response<B> {
    into_body(chaos_core::respond::error(kind, rule, grpc))
}

/// The answer to a dropped request: an empty response whose body errors on its first
/// poll, so nothing is sent. The body holds the injection (its concurrency slot).
pub(crate) fn dropped<B: ChaosBody>(inj: Injection, header: Option<&HeaderName>) -> Response<B> {
    let mut res = Response::new(B::default());
    mark(&mut res, header, inj.rule_id());
    res.map(|b| B::from_fault(FaultBody::reset(b, inj)))
}

/// Marks an injected response and applies a body fault; the body then holds the
/// injection until it ends.
pub(crate) fn finish<B: ChaosBody>(
    mut res: Response<B>,
    injection: Option<Injection>,
    header: Option<&HeaderName>,
) -> Response<B> {
    let Some(inj) = injection else { return res };
    mark(&mut res, header, inj.rule_id());
    if let Fault::Body(_) = inj.fault() {
        return res.map(|body| B::from_fault(FaultBody::new(body, inj)));
    }
    res
}

/// Adds the attribution header (`x-chaos-injected: RULE_ID`).
pub(crate) fn mark<B>(res: &mut Response<B>, header: Option<&HeaderName>, rule: &str) {
    chaos_core::respond::mark(res.headers_mut(), header, rule);
}

/// Whether a response counts as an error for steady-state observation: HTTP 5xx, or a
/// gRPC trailers-only response whose status is a server-side failure.
#[inline]
pub(crate) fn is_error<B>(res: &Response<B>) -> bool {
    if res.status().is_server_error() {
        return true;
    }
    match res.headers().get("grpc-status") {
        None => false,
        // UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS
        Some(v) => matches!(v.as_bytes(), b"2" | b"4" | b"8" | b"13" | b"14" | b"15"),
    }
}
