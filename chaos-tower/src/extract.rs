//! An axum extractor for the request's chaos context (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::FromRequestParts;
use chaos_core::ChaosContext;
use http::request::Parts;

/// The [`ChaosContext`] of the request a handler serves, or `None` when it carried none:
/// an axum extractor that never rejects.
///
/// It takes the context the [`ChaosLayer`](crate::ChaosLayer) put in the request's
/// extensions (with [`context_extension(true)`](crate::ChaosLayerBuilder::context_extension)),
/// else the one whose task-local scope the layer runs the request in
/// ([`ChaosContext::current`]). Either way it costs a reference count, not an allocation,
/// so the layer needs no extension for a handler to see the context.
///
/// ```
/// use axum::{Router, routing::get};
/// use chaos_tower::RequestContext;
///
/// async fn orders(RequestContext(ctx): RequestContext) -> String {
///     match ctx {
///         Some(c) if c.is_test_traffic() => "test traffic".to_owned(),
///         Some(c) => format!("scenarios: {:?}", c.scenarios()),
///         None => "organic".to_owned(),
///     }
/// }
///
/// let app: Router = Router::new().route("/orders", get(orders));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestContext(pub Option<ChaosContext>);

impl<S: Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let ctx = parts.extensions.get::<ChaosContext>().cloned();
        Ok(RequestContext(ctx.or_else(ChaosContext::current)))
    }
}
