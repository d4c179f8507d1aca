//! Body faults: a response body that resets, truncates, stalls or throttles.
//!
//! [`ChaosBody`] is what the layers need of a response body type: a default (empty) body,
//! a body from bytes (for aborts), and a way to wrap the body in a [`FaultBody`]. It is
//! implemented for `axum::body::Body` (feature `axum`), `tonic::body::Body` (feature
//! `tonic`) and `http_body_util`'s `UnsyncBoxBody<Bytes, BoxError>` (raw hyper).

use bytes::Bytes;
pub use chaos_core::body::FaultBody;

use chaos_core::BoxError;

/// A response body type the chaos layers can answer with and wrap.
///
/// Implement it for your own body type if it is not one of the provided ones: `from_bytes`
/// builds an abort body, and `from_fault` type-erases a [`FaultBody`] wrapping a body of
/// this type (usually with the type's own boxing constructor).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a body the chaos layers can answer with",
    label = "no `ChaosBody` for `{Self}`",
    note = "for axum's `Body` turn on chaos-tower's `axum` feature, for tonic's its `tonic` feature: \
            chaos-tower = {{ path = \"../chaos/chaos-tower\", features = [\"axum\"] }}",
    note = "raw hyper bodies: `http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>` has it always; \
            another body type can implement `ChaosBody` itself"
)]
pub trait ChaosBody: http_body::Body + Default + Sized {
    /// A body holding these bytes.
    fn from_bytes(bytes: Bytes) -> Self;

    /// This body type, made from a fault-injecting wrapper around one of its own.
    fn from_fault(body: FaultBody<Self>) -> Self;
}

#[cfg(feature = "axum")]
impl ChaosBody for axum_core::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum_core::body::Body::from(bytes)
    }

    fn from_fault(body: FaultBody<Self>) -> Self {
        axum_core::body::Body::new(body)
    }
}

#[cfg(feature = "tonic")]
impl ChaosBody for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(http_body_util::Full::new(bytes))
    }

    fn from_fault(body: FaultBody<Self>) -> Self {
        tonic::body::Body::new(body)
    }
}

impl ChaosBody for http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
    fn from_bytes(bytes: Bytes) -> Self {
        use http_body_util::BodyExt;
        http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn from_fault(body: FaultBody<Self>) -> Self {
        http_body_util::combinators::UnsyncBoxBody::new(body)
    }
}
