//! Finding an injected fault in what a caller got back: the core's [`ChaosErrorExt`],
//! taught the wrappers of reqwest-middleware and reqwest-retry.

use std::error::Error as StdError;

/// Finds the [`InjectedFault`](chaos_core::InjectedFault) behind an error from a reqwest
/// call, however it was wrapped: by this crate's middleware
/// (`reqwest_middleware::Error::Middleware`), by reqwest-retry's `RetryError` around it
/// (with the `retry` feature), by reqwest itself (a connect error from
/// [`ChaosConnectLayer`](crate::ChaosConnectLayer), a body cut short by a `body` or `drop`
/// fault). The one trait of `chaos_core`, for every error type; building the middleware,
/// the connect layer or the retry strategy teaches it the wrappers above.
///
/// ```
/// use chaos_reqwest::ChaosErrorExt;
/// # async fn call(client: reqwest_middleware::ClientWithMiddleware) {
/// match client.get("http://127.0.0.1:9/prices").send().await {
///     Err(e) if e.injected_fault().is_some() => { /* chaos did this: expected in a test */ }
///     Err(e) => panic!("a real failure: {e}"),
///     Ok(_) => {}
/// }
/// # }
/// ```
pub use chaos_core::ChaosErrorExt;
use chaos_core::InjectedFault;

/// Teaches the core's fault finder the wrappers whose `source()` skips what they wrap:
/// reqwest-middleware's transparent errors, and reqwest-retry's `RetryError`.
pub(crate) fn teach() {
    InjectedFault::look_inside("reqwest_middleware::Error", middleware_inside);
    #[cfg(feature = "retry")]
    InjectedFault::look_inside("reqwest_retry::RetryError", retry_inside);
}

fn middleware_inside<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e.downcast_ref::<reqwest_middleware::Error>()? {
        reqwest_middleware::Error::Reqwest(e) => Some(e),
        // anyhow's error: its chain starts at the error itself, then its sources.
        reqwest_middleware::Error::Middleware(a) => Some(a.as_ref()),
    }
}

#[cfg(feature = "retry")]
fn retry_inside<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e.downcast_ref::<reqwest_retry::RetryError>()? {
        reqwest_retry::RetryError::WithRetries { err, .. }
        | reqwest_retry::RetryError::Error(err) => Some(err),
    }
}
