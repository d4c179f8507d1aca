//! The chaos context in OpenTelemetry baggage (feature `otel`), for services whose inbound
//! hop put it there (`chaos=<x-chaos value>`, `test-traffic=1`, and for a signed context
//! `chaos-signature=<x-chaos-signature value>`).

use chaos_core::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};
use chaos_core::{Chaos, ChaosContext};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;

/// The context in the current OpenTelemetry context's baggage, checked exactly as headers
/// are: directives need `allow_directives` or a valid signature, so baggage an outside
/// caller sent cannot switch a fault on by itself.
pub(crate) fn context(chaos: &Chaos) -> Option<ChaosContext> {
    opentelemetry::Context::map_current(|cx| {
        let bag = cx.baggage();
        let x = bag.get("chaos");
        let tt = bag.get("test-traffic");
        if x.is_none() && tt.is_none() {
            return None;
        }
        let mut headers = HeaderMap::new();
        let mut put = |name: HeaderName, v: Option<&opentelemetry::StringValue>| {
            if let Some(v) = v.and_then(|v| HeaderValue::from_str(v.as_str()).ok()) {
                headers.insert(name, v);
            }
        };
        put(X_CHAOS, x);
        put(X_TEST_TRAFFIC, tt);
        put(X_CHAOS_SIGNATURE, bag.get("chaos-signature"));
        chaos.context_from_headers(&headers)
    })
}
