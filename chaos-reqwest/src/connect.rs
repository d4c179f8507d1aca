//! The genuine route: a connector layer whose faults reqwest reports as its own errors.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chaos_core::{Action, Chaos, ChaosContext, Decision, InjectedFault, Point, RequestView};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use chaos_core::BoxError;

/// The injection point of [`ChaosConnectLayer`]: rules say `point: connect`.
pub const CONNECT_POINT: &str = "connect";

/// A layer for [`reqwest::ClientBuilder::connector_layer`]: faults on *new connections*
/// (point `connect`), which reqwest reports as its own `reqwest::Error`s.
///
/// | fault | what the caller gets |
/// |---|---|
/// | `error: unavailable`, `abort` | `reqwest::Error` with `is_connect()`: connection refused |
/// | `drop: reset` | `reqwest::Error` with `is_connect()`: connection reset |
/// | `error: timeout` | `reqwest::Error` with `is_connect()` and `is_timeout()`, at once |
/// | `drop: hang` | the connect never finishes: reqwest's own `connect_timeout` or `timeout` fires (`is_timeout()`); without one, the kill switch or `limits.max_hang` ends it (then as `error: timeout`) |
/// | `delay` | a slow connect, then the real connection (it counts against `connect_timeout`) |
/// | `body` | nothing (no body at connect time) |
///
/// These are the errors reqwest-retry's default strategy retries as transient, with no
/// help from [`ChaosRetryableStrategy`](crate::ChaosRetryableStrategy).
///
/// **Limits.** A connector runs only when the pool has no idle connection to reuse, so a
/// rule here fires on the first call to a host and then only when a new connection is
/// needed. For tests that want every call to connect, build the client with
/// `pool_max_idle_per_host(0)`. The layer cannot see the URL (reqwest hides it), so it
/// knows the dependency only by the name given here; and when hyper finishes a connect in
/// the background the task's chaos context is not there to match on.
///
/// ```
/// use chaos_core::Chaos;
/// use chaos_reqwest::ChaosConnectLayer;
///
/// let chaos = Chaos::from_env();
/// let client = reqwest::Client::builder()
///     .connect_timeout(std::time::Duration::from_secs(2))
///     .connector_layer(ChaosConnectLayer::new(&chaos, "payments"))
///     .build()
///     .unwrap();
/// # let _ = client;
/// ```
#[derive(Clone)]
pub struct ChaosConnectLayer {
    chaos: Chaos,
    target: Arc<str>,
}

impl fmt::Debug for ChaosConnectLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosConnectLayer")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl ChaosConnectLayer {
    /// A layer for connections to `target` (the rules' `target`).
    pub fn new(chaos: &Chaos, target: impl Into<String>) -> ChaosConnectLayer {
        crate::error::teach();
        ChaosConnectLayer {
            chaos: chaos.clone(),
            target: Arc::from(target.into()),
        }
    }
}

impl<S> Layer<S> for ChaosConnectLayer {
    type Service = ChaosConnect<S>;

    fn layer(&self, inner: S) -> ChaosConnect<S> {
        ChaosConnect {
            inner,
            chaos: self.chaos.clone(),
            target: self.target.clone(),
        }
    }
}

/// The connector service made by [`ChaosConnectLayer`].
#[derive(Clone)]
pub struct ChaosConnect<S> {
    inner: S,
    chaos: Chaos,
    target: Arc<str>,
}

impl<S> fmt::Debug for ChaosConnect<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosConnect")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

type BoxConnect<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pin_project! {
    /// The future of [`ChaosConnect`]: the inner connect, unboxed, when nothing is injected.
    pub struct ConnectFuture<F, T> {
        #[pin]
        state: State<F, T>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T> {
        Pass { #[pin] fut: F },
        Injected { fut: BoxConnect<T> },
    }
}

impl<F, T> fmt::Debug for ConnectFuture<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectFuture").finish_non_exhaustive()
    }
}

impl<F, T> Future for ConnectFuture<F, T>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Pass { fut } => fut.poll(cx),
            StateProj::Injected { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// An injected failure as a connector reports it, carrying the fault: the one place the
/// faults meet reqwest's connect errors. A timeout (`error: timeout`, a hang at its
/// ceiling) times out, a reset resets, anything else is refused.
fn io_error(fault: InjectedFault) -> BoxError {
    let kind = if fault.is_timeout() {
        io::ErrorKind::TimedOut
    } else if fault.is_reset() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::ConnectionRefused
    };
    Box::new(io::Error::new(kind, fault))
}

impl<S, R> Service<R> for ChaosConnect<S>
where
    S: Service<R, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ConnectFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let decision = if self.chaos.is_armed() {
            ChaosContext::with_current(|ctx| {
                self.chaos.decide(
                    &RequestView::new(Point::from_name(CONNECT_POINT), &self.target).context(ctx),
                )
            })
        } else {
            Decision::Pass
        };
        let inj = match decision {
            Decision::Pass => {
                return ConnectFuture {
                    state: State::Pass {
                        fut: self.inner.call(req),
                    },
                };
            }
            Decision::Inject(inj) => inj,
        };
        let fut: BoxConnect<S::Response> = match inj.action() {
            Action::Wait(wait) => {
                // Keep the readiness reservation (tower's AsyncFilter idiom).
                let clone = self.inner.clone();
                let mut svc = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let (inj, waited) = wait.await;
                    waited.map_err(io_error)?;
                    let conn = svc.call(req).await;
                    drop(inj);
                    conn
                })
            }
            // No body at connect time.
            Action::Proceed(_) => {
                return ConnectFuture {
                    state: State::Pass {
                        fut: self.inner.call(req),
                    },
                };
            }
            Action::Fail(fault) => Box::pin(std::future::ready(Err(io_error(fault)))),
        };
        ConnectFuture {
            state: State::Injected { fut },
        }
    }
}
