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
mod trust;

pub use self::future::ResponseFuture;
pub use self::layer::{ChaosLayer, ChaosLayerBuilder};
pub use self::service::ChaosService;
pub(crate) use self::trust::strip_untrusted;
