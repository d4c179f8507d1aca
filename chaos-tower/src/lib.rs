//! `async fn(Request) -> Result<Response, Error>`, failing on purpose: failure injection
//! for tower stacks (axum, hyper, tonic), driven by [`chaos_core`] rules and the chaos
//! headers that travel with each request.
//!
//! # Overview
//!
//! * [`ChaosLayer`] is the server-side injection point (`server`). Per request it reads
//!   `x-chaos`, `x-chaos-signature` and `x-test-traffic` (with the `otel` feature and an
//!   armed engine, when those are absent, W3C `baggage` and then an OpenTelemetry
//!   `Context` in the extensions or the attached one), builds the
//!   [`ChaosContext`](chaos_core::ChaosContext) (a tagged request's from a cache, without
//!   parsing or allocating) and runs the inner service inside its task-local scope, so
//!   handlers ([`ChaosContext::current`](chaos_core::ChaosContext::current)) and client
//!   layers below see it (an axum handler with the [`RequestContext`] extractor, feature
//!   `axum`); [`ChaosLayerBuilder::context_extension`] puts it in the request's extensions
//!   too. Then it asks the engine and applies the
//!   fault, always as a *response*, so the service's error type is unchanged and it fits
//!   `axum::serve`, `Router::layer`, hyper and `tonic::transport::Server::builder().layer`.
//! * [`ChaosClientLayer`] is the client-side point (`client`) for tower clients: it
//!   injects faults into calls to one dependency and forwards the context.
//! * [`admin`] (feature `admin`) is a control API to mount on an internal port.
//!
//! # Faults at the server
//!
//! | fault | what the caller sees |
//! |---|---|
//! | `delay` | the real response, later. The inner service's readiness reservation is held during the delay (the instance that was made ready is the one called). |
//! | `abort` | a response with the rule's status, body, content type and headers, without calling the service. For gRPC requests (`content-type: application/grpc*`), a trailers-only response: HTTP 200 with `grpc-status` / `grpc-message`. |
//! | `error: KIND` | `unavailable` → 503 (gRPC `UNAVAILABLE`), `timeout` → 504 (`DEADLINE_EXCEEDED`), a SQLSTATE → 500 (`INTERNAL`). |
//! | `drop: reset` | no response: the body errors on its first poll, so hyper closes an HTTP/1 connection having written 0 bytes and resets an HTTP/2 stream. |
//! | `drop: hang` | nothing until the client gives up (hyper then drops the future), the kill switch (then the request is served), or `limits.max_hang` (then the connection is dropped). |
//! | `body` | the real response, its body truncated (an error after N bytes), stalled after N bytes, or throttled to N bytes per second. |
//!
//! Every injected response carries `x-chaos-injected: RULE_ID` (`x-chaos` for a
//! per-request directive), unless turned off with
//! [`ChaosLayerBuilder::injected_header`].
//!
//! # Example
//!
//! On axum, with the `axum` feature (`chaos-tower = { path = "../chaos/chaos-tower",
//! features = ["axum"] }`; without it `axum::body::Body` is not a [`ChaosBody`] and the
//! compiler says so, naming the feature):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use chaos_core::Chaos;
//! use chaos_tower::ChaosLayer;
//! use tower_layer::Layer;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let chaos = Chaos::from_env(); // CHAOS_RULES=rules.yaml, watched
//! let app = Router::new().route("/checkout", get(|| async { "ok" }));
//! let app = ChaosLayer::builder(&chaos).target("checkout").build().layer(app);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await
//! # }
//! ```
//!
//! # Where to put the layer
//!
//! Wrap the whole `Router` from outside, `ChaosLayer::new(&chaos).layer(router)`, rather
//! than `router.layer(ChaosLayer::new(&chaos))`: axum's `Router::layer` boxes every route
//! and adds about three allocations and 100 ns per request for *any* layer, while a layer
//! around the router adds none. Put it outermost, so injected latency is seen by every
//! timeout and metric of the service and a dropped request never reaches a handler.
//!
//! # Performance
//!
//! When no rule is loaded and no directive is possible, a request costs one scan of its
//! header names for `x-chaos` and `x-test-traffic` (to carry a context to the next hop)
//! and one relaxed atomic load. With rules loaded and none matching, add a read of the
//! rules in force (a plain load while the thread holds the current ones), an indexed
//! look-up and the steady-state count (no clock read; two for a request in the organic
//! sample or matched by a rule, which is timed): no heap
//! allocation, no lock, no random draw and no boxed future. A tagged request's context
//! (scenario tags, the test-traffic mark) comes from a cache kept per rule set by the
//! bytes of its headers, so it is neither parsed again nor allocated. The service holds its layer's
//! settings by one reference count (`build()`, freed with the last service: one atomic
//! increment per clone that hyper makes per request) or by a `&'static` pointer
//! (`build_static()`, kept for the life of the process: the clone is a copy). The
//! `benches/` crate measures both against a bare service, a peer chaos layer and a
//! tower-http layer.
//!
//! # Steady state
//!
//! While the engine is armed, both layers record each exchange's outcome (an error, a
//! 5xx or a failing gRPC status), its latency and whether chaos touched it, in the
//! engine's steady state for their point and target
//! ([`Chaos::steady_state`](chaos_core::Chaos::steady_state)): no lock, no allocation.
//!
//! # Cohorts and guards
//!
//! The server layer is where a request leaves the process, so it is where each rule's
//! cohorts are judged (see [chaos-core](chaos_core#experiments-that-stop-themselves)).
//! When rules exist beyond the `server` point, it runs the inner service with a request
//! scope ([`Touching`](chaos_core::observe::Touching)) in which every hop (this crate's
//! client layer, chaos-reqwest, chaos-sqlx, `Chaos::inject`) notes the rules it matched;
//! the response then counts in each rule's experiment or control cohort. A rule whose
//! fault was injected at a payments call is judged by what checkout's caller got: a
//! fallback that turns the failure into a 200 keeps the guard holding. Work spawned onto
//! another task is outside the scope and is judged at its own point.
//!
//! # Cancel safety
//!
//! Dropping a response future (the client went away, a timeout above fired) cancels the
//! delay or hang and frees the rule's `max_active` slot at once.
//!
//! # Feature flags
//!
//! Name | Description | Default?
//! ---|---|---
//! `axum` | [`ChaosBody`] for `axum::body::Body`; the [`RequestContext`] extractor | no
//! `tonic` | [`ChaosBody`] for `tonic::body::Body` | no
//! `admin` | the [`admin`] control service | no
//! `otel` | the context from W3C `baggage` and the OpenTelemetry context, written to outbound `baggage` too; the engine's OpenTelemetry metrics ([`chaos_core::otel`]) | no

#![cfg_attr(docsrs, feature(doc_cfg))]

mod accessors;
mod answers;
mod chaos_body;
pub mod client;
mod exchange;
pub mod server;
mod settings;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "axum")]
mod extract;

pub use self::chaos_body::{ChaosBody, FaultBody};
#[cfg(feature = "axum")]
pub use self::extract::RequestContext;
pub use chaos_core::steady::{Observed, SteadyState};

pub use self::client::{ChaosClient, ChaosClientLayer, ChaosClientLayerBuilder, ChaosResponseBody};
pub use self::server::{ChaosLayer, ChaosLayerBuilder, ChaosService};

/// [`ChaosBody`] and [`FaultBody`] under their former path: use them from the crate root.
#[doc(hidden)]
pub mod body {
    pub use crate::chaos_body::{ChaosBody, FaultBody};
}

/// A type-erased error, as tower's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
