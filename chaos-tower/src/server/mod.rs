//! The server layer: the injection point `server`, for inbound requests.
//!
//! ```
//! use axum::{Router, routing::get};
//! use chaos_core::Chaos;
//! use chaos_tower::ChaosLayer;
//! use tower_layer::Layer;
//!
//! let chaos = Chaos::from_env();
//! let app: Router = Router::new().route("/orders/{id}", get(|| async { "order" }));
//! // Wrap the whole router from outside: no per-route boxing (see the crate docs).
//! let app = ChaosLayer::builder(&chaos).target("orders").build().layer(app);
//! # let _ = app;
//! ```

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::{ChaosLayer, ChaosLayerBuilder};
pub use self::service::ChaosService;

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
