//! The chaos context in OpenTelemetry (feature `otel`): W3C `baggage` on the request, and
//! the OpenTelemetry context the application extracted or attached.

use chaos_core::{Chaos, ChaosContext};
use http::Request;

/// The context of a request without chaos headers: its `baggage` header, else (when the
/// engine is armed, so a decision may use it) the OpenTelemetry context in its extensions
/// or the one attached to this thread. Client adapters read the attached context
/// themselves, so nothing is lost by skipping it when nothing can be decided.
#[inline]
pub(crate) fn server_context<B>(chaos: &Chaos, req: &Request<B>) -> Option<ChaosContext> {
    if let Some(c) = chaos.context_from_baggage(req.headers()) {
        return Some(c);
    }
    if !chaos.is_armed() {
        return None;
    }
    match req.extensions().get::<opentelemetry::Context>() {
        Some(cx) => chaos.context_from_otel(cx),
        None => chaos.context_from_current_otel(),
    }
}
