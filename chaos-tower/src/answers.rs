//! Synthesized answers in the layers' body types (built by `chaos_core::respond`), and
//! the marking and body faults of injected responses.

use chaos_core::Injection;
use chaos_core::rules::Fault;
use http::{HeaderName, Response};

use crate::chaos_body::{ChaosBody, FaultBody};

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

/// A response made by chaos-core in the body type `B`, marked with its rule.
pub(crate) fn synthesized<B: ChaosBody>(
    res: Response<bytes::Bytes>,
    inj: &Injection,
    header: Option<&HeaderName>,
) -> Response<B> {
    let mut res = into_body(res);
    mark(&mut res, header, inj.rule_id());
    res
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
    inj: Injection,
    header: Option<&HeaderName>,
) -> Response<B> {
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

/// Whether a response counts as an error for the steady state (see
/// [`chaos_core::respond::is_failure`]).
#[inline]
pub(crate) fn is_error<B>(res: &Response<B>) -> bool {
    chaos_core::respond::is_failure(res.status(), res.headers())
}
