//! Finding an injected fault in what a caller got back.

use std::error::Error as StdError;

use chaos_core::InjectedFault;

/// Finds the [`InjectedFault`] behind an error from a reqwest call, however it was
/// wrapped: by this crate's middleware (`reqwest_middleware::Error::Middleware`), by
/// reqwest-retry's `RetryError` around it (with the `retry` feature), by reqwest itself
/// (a connect error from [`ChaosConnectLayer`](crate::ChaosConnectLayer), a body cut
/// short by a `body` or `drop` fault).
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
pub trait ChaosErrorExt {
    /// The injected fault behind this error, if chaos caused it.
    fn injected_fault(&self) -> Option<&InjectedFault>;

    /// Whether chaos caused this error.
    fn is_injected(&self) -> bool {
        self.injected_fault().is_some()
    }
}

impl ChaosErrorExt for reqwest_middleware::Error {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        match self {
            reqwest_middleware::Error::Reqwest(e) => find(e),
            // anyhow's chain starts at the error itself, then its sources.
            reqwest_middleware::Error::Middleware(a) => a.chain().find_map(find),
        }
    }
}

impl ChaosErrorExt for reqwest::Error {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        find(self)
    }
}

/// Walks `source()`, looking inside the wrappers whose `source()` skips what they wrap:
/// `io::Error` (its custom payload), reqwest-middleware's transparent errors, and
/// reqwest-retry's `RetryError`.
fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a InjectedFault> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(f) = e.downcast_ref::<InjectedFault>() {
            return Some(f);
        }
        if let Some(f) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|payload| InjectedFault::find(payload))
        {
            return Some(f);
        }
        if let Some(m) = e.downcast_ref::<reqwest_middleware::Error>() {
            return m.injected_fault();
        }
        #[cfg(feature = "retry")]
        if let Some(r) = e.downcast_ref::<reqwest_retry::RetryError>() {
            let inner = match r {
                reqwest_retry::RetryError::WithRetries { err, .. }
                | reqwest_retry::RetryError::Error(err) => err,
            };
            return inner.injected_fault();
        }
        cur = e.source();
    }
    None
}
