//! [`ChaosClientBuilder`]: a reqwest client and its chaos middleware made together, so the
//! client's timeout is stated once and both take it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chaos_core::Chaos;
use http::HeaderName;
use reqwest_middleware::{ClientWithMiddleware, Middleware};

use crate::middleware::{ChaosMiddleware, ChaosMiddlewareBuilder};

/// Builds a reqwest client whose calls are the `client` point: the reqwest client, the
/// middlewares you run around chaos (retries, tracing), and [`ChaosMiddleware`] innermost,
/// with one timeout that reqwest and the middleware both take. Start it with
/// [`ChaosMiddleware::client`].
///
/// A middleware cannot read a built client's timeout, so a client made by hand and given
/// its timeout only on `reqwest::ClientBuilder` lets an injected delay run in full: reqwest
/// starts its clock when the middleware hands the request on, after the delay. Made here,
/// an injected delay is cut when the timeout runs out, as a slow server's answer would be.
///
/// ```
/// use std::time::Duration;
/// use chaos_core::Chaos;
/// use chaos_reqwest::ChaosMiddleware;
///
/// let chaos = Chaos::from_env();
/// let pricing = ChaosMiddleware::client(&chaos, "pricing")
///     .timeout(Duration::from_millis(100)) // reqwest's and the middleware's
///     .build()?;
/// # let _ = pricing;
/// # Ok::<(), reqwest::Error>(())
/// ```
///
/// Other reqwest settings go through [`reqwest`](Self::reqwest); middlewares that should
/// see injected faults as real ones (reqwest-retry, tracing) through [`with`](Self::with),
/// which puts them outside chaos so each retry passes through it.
#[must_use]
pub struct ChaosClientBuilder {
    middleware: ChaosMiddlewareBuilder,
    reqwest: reqwest::ClientBuilder,
    timeout: Option<Duration>,
    outer: Vec<Arc<dyn Middleware>>,
}

impl fmt::Debug for ChaosClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosClientBuilder")
            .field("middleware", &self.middleware)
            .field("timeout", &self.timeout)
            .field("outer", &self.outer.len())
            .finish_non_exhaustive()
    }
}

impl ChaosMiddleware {
    /// Starts a client for calls to `target` (the rules' `target`), made together with its
    /// middleware: see [`ChaosClientBuilder`].
    pub fn client(chaos: &Chaos, target: impl Into<String>) -> ChaosClientBuilder {
        ChaosClientBuilder {
            middleware: ChaosMiddleware::builder(chaos).target(target),
            reqwest: reqwest::Client::builder(),
            timeout: None,
            outer: Vec::new(),
        }
    }
}

impl ChaosClientBuilder {
    /// The client's total timeout: reqwest's (`reqwest::ClientBuilder::timeout`) and the
    /// middleware's. An injected delay counts against it and one longer than it ends, when
    /// it runs out, in an error whose fault `is_timeout()`; a `drop: hang` ends the same way.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Any other reqwest setting: `.reqwest(|b| b.connect_timeout(..).user_agent(..))`.
    /// Give the total timeout to [`timeout`](Self::timeout), not here: one set here is
    /// reqwest's alone and does not cut injected delays.
    pub fn reqwest(
        mut self,
        configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Self {
        self.reqwest = configure(self.reqwest);
        self
    }

    /// A middleware that runs before chaos, outermost first: a retry middleware added
    /// here retries what chaos injects.
    pub fn with<M: Middleware>(mut self, middleware: M) -> Self {
        self.outer.push(Arc::new(middleware));
        self
    }

    /// Whether to send the chaos context on (see [`ChaosMiddlewareBuilder::forward`]).
    pub fn forward(mut self, yes: bool) -> Self {
        self.middleware = self.middleware.forward(yes);
        self
    }

    /// The header naming the rule on injected responses (see
    /// [`ChaosMiddlewareBuilder::injected_header`]).
    pub fn injected_header(mut self, name: Option<HeaderName>) -> Self {
        self.middleware = self.middleware.injected_header(name);
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// reqwest cannot build its client (a TLS back-end fails to start, a bad setting).
    pub fn build(self) -> Result<ClientWithMiddleware, reqwest::Error> {
        let (mut reqwest, mut middleware) = (self.reqwest, self.middleware);
        if let Some(t) = self.timeout {
            reqwest = reqwest.timeout(t);
            middleware = middleware.timeout(t);
        }
        let mut b = reqwest_middleware::ClientBuilder::new(reqwest.build()?);
        for m in self.outer {
            b = b.with_arc(m);
        }
        Ok(b.with(middleware.build()).build())
    }
}
