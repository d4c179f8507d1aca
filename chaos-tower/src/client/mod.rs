//! The client layer: the injection point `client`, for outbound calls made through a
//! tower client (hyper-util's legacy `Client`, a tonic `Channel`, any
//! `Service<http::Request<B>>`).
//!
//! It is named by the dependency it wraps (the rules' `target`). Per call it:
//!
//! * forwards the current [`ChaosContext`](chaos_core::ChaosContext) to the next hop: `x-chaos` (directives' hop
//!   budgets advanced, spent or untrusted directives dropped; a signed context verbatim
//!   with its `x-chaos-signature`) and `x-test-traffic`. The context is the one in the
//!   request's extensions, else the task's (set by the server layer);
//! * decides at point `client` for its target and applies the fault:
//!
//! | fault | what the caller gets |
//! |---|---|
//! | `delay` | the real response, later (the readiness reservation is held meanwhile) |
//! | `abort` | a synthesized response with the rule's status, body and headers; for gRPC, a trailers-only response (`grpc-status`) |
//! | `error: KIND`, `drop: reset` | `Err(`[`InjectedFault`](chaos_core::InjectedFault)`)`, a connection-class error (gRPC: a trailers-only `UNAVAILABLE`, `DEADLINE_EXCEEDED` or `INTERNAL`) |
//! | `drop: hang` | nothing until the caller gives up, the kill switch, or `limits.max_hang` (then a timeout error) |
//! | `body` | the real response with its body truncated, stalled or throttled |
//!
//! The error type is [`BoxError`](crate::BoxError), like tower's own `Timeout`: find the
//! injected fault with [`InjectedFault::find`](chaos_core::InjectedFault::find). The
//! response body is a [`ChaosResponseBody`] around the inner one (any body of `Bytes`, such
//! as hyper's `Incoming` or tonic's), so the layer wraps hyper-util's legacy `Client` and a
//! tonic `Channel` alike.
//!
//! While the engine is armed the layer records each call's outcome (an error, a 5xx or a
//! failing gRPC status) in the engine's steady state for point `client` and its target.
//!
//! ```
//! use chaos_core::Chaos;
//! use chaos_tower::ChaosClientLayer;
//! use tower::ServiceBuilder;
//! # fn wrap<S>(http_client: S) {
//! let chaos = Chaos::from_env();
//! let payments = ServiceBuilder::new()
//!     .layer(ChaosClientLayer::new(&chaos, "payments"))
//!     .service(http_client);
//! # let _ = payments;
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use self::body::ChaosResponseBody;
pub use self::future::ResponseFuture;
pub(crate) use self::layer::Shared;
pub use self::layer::{ChaosClientLayer, ChaosClientLayerBuilder};
pub use self::service::ChaosClient;
