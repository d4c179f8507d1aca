//! reqwest-retry integration (feature `retry`).

use chaos_core::InjectedFault;
use reqwest_retry::{DefaultRetryableStrategy, Retryable, RetryableStrategy};

use chaos_core::ChaosErrorExt;

/// A [`RetryableStrategy`] that classes injected faults as the real failures they stand
/// for, then asks the wrapped strategy about everything else.
///
/// reqwest-retry's default strategy classes every middleware error as `Fatal`, so without
/// this an injected `error: unavailable` would never be retried, while the connection
/// error it stands for would be. Injected `unavailable`, `timeout` and `drop` errors are
/// `Transient`; an injected SQLSTATE (meaningless for HTTP) is `Fatal`. Injected responses
/// (`abort: 503`) are real responses and go to the wrapped strategy untouched.
///
/// ```
/// use chaos_reqwest::ChaosRetryableStrategy;
/// use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
///
/// let policy = ExponentialBackoff::builder().build_with_max_retries(2);
/// let retry = RetryTransientMiddleware::new_with_policy_and_strategy(
///     policy,
///     ChaosRetryableStrategy::default(),
/// );
/// # let _ = retry;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ChaosRetryableStrategy<S = DefaultRetryableStrategy> {
    inner: S,
}

impl Default for ChaosRetryableStrategy<DefaultRetryableStrategy> {
    /// Around reqwest-retry's default strategy.
    fn default() -> Self {
        ChaosRetryableStrategy::new(DefaultRetryableStrategy)
    }
}

impl<S> ChaosRetryableStrategy<S> {
    /// Wraps your own strategy.
    pub fn new(inner: S) -> ChaosRetryableStrategy<S> {
        crate::error::teach();
        ChaosRetryableStrategy { inner }
    }
}

impl<S: RetryableStrategy> RetryableStrategy for ChaosRetryableStrategy<S> {
    fn handle(
        &self,
        res: &Result<reqwest::Response, reqwest_middleware::Error>,
    ) -> Option<Retryable> {
        if let Err(e) = res
            && let Some(f) = e.injected_fault()
        {
            return Some(classify(f));
        }
        self.inner.handle(res)
    }
}

fn classify(f: &InjectedFault) -> Retryable {
    if f.is_unavailable() || f.is_timeout() || f.is_reset() {
        Retryable::Transient
    } else if let Some(status) = f.abort() {
        // Aborts become responses here; kept for faults found inside other errors.
        match status {
            chaos_core::rules::AbortKind::Http(s)
                if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 =>
            {
                Retryable::Transient
            }
            _ => Retryable::Fatal,
        }
    } else {
        Retryable::Fatal
    }
}
