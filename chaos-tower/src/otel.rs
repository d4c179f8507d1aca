//! The chaos context in OpenTelemetry (feature `otel`): W3C `baggage` on the request, and
//! the OpenTelemetry context the application extracted or attached.

use chaos_core::{Chaos, ChaosContext};
use http::Request;

/// The context of a request without chaos headers, when the engine is armed (so a
/// decision may use it): its `baggage` header, else the OpenTelemetry context in its
/// extensions or the one attached to this thread.
///
/// An engine that can decide nothing skips all three, so a service that keeps the layer
/// with no rules pays nothing for baggage it does not use. Such a hop passes a baggage-only
/// context on through its own OpenTelemetry propagation (which carries the `chaos`
/// members with the rest), not as `x-chaos`.
#[inline]
pub(crate) fn server_context<B>(chaos: &Chaos, req: &Request<B>) -> Option<ChaosContext> {
    if !chaos.is_armed() {
        return None;
    }
    if let Some(c) = chaos.context_from_baggage(req.headers()) {
        return Some(c);
    }
    match req.extensions().get::<opentelemetry::Context>() {
        Some(cx) => chaos.context_from_otel(cx),
        None => chaos.context_from_current_otel(),
    }
}
