//! The trust boundary: what an edge layer keeps of the chaos headers a request brings.

use chaos_core::ChaosContext;
use chaos_core::context::Trust;
use chaos_core::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};
use http::HeaderMap;

/// At a trust boundary: keeps a signed context and its headers, removes everything else.
pub(crate) fn strip_untrusted(
    headers: &mut HeaderMap,
    ctx: Option<ChaosContext>,
) -> Option<ChaosContext> {
    if let Some(c) = &ctx
        && matches!(c.trust(), Trust::Signed { .. })
    {
        return ctx;
    }
    headers.remove(&X_CHAOS);
    headers.remove(&X_TEST_TRAFFIC);
    headers.remove(&X_CHAOS_SIGNATURE);
    #[cfg(feature = "otel")]
    chaos_core::otel::strip_baggage(headers);
    None
}
