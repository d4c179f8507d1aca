//! The client layer: the injection point `client`, for outbound calls made through a
//! tower client (hyper-util's legacy `Client`, a tonic `Channel`, any
//! `Service<http::Request<B>>`).
//!
//! It is named by the dependency it wraps (the rules' `target`). Per call it:
//!
//! * forwards the current [`ChaosContext`] to the next hop: `x-chaos` (directives' hop
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
//! The error type is [`BoxError`], like tower's own `Timeout`: find the
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

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use chaos_core::steady::SteadyState;
use chaos_core::{Chaos, ChaosContext, Decision, HttpSide, Point, RequestView};
use http::{HeaderName, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use self::body::ChaosResponseBody;
pub use self::future::ResponseFuture;
use crate::BoxError;
use crate::exchange::Exchange;
use crate::settings::Settings;

pub(crate) struct Shared {
    chaos: Chaos,
    target: Box<str>,
    forward: bool,
    injected_header: Option<HeaderName>,
    steady: Arc<SteadyState>,
}

/// A [`Layer`] for outbound calls to one dependency (point `client`). See the
/// [module docs](self).
///
/// Cheap to clone; its settings are allocated once and shared by every service it makes,
/// freed with the last one (or kept for the life of the process:
/// [`ChaosClientLayerBuilder::build_static`]).
#[derive(Clone)]
pub struct ChaosClientLayer {
    shared: Settings<Shared>,
}

impl fmt::Debug for ChaosClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosClientLayer")
            .field("target", &self.shared.target)
            .field("forward", &self.shared.forward)
            .finish_non_exhaustive()
    }
}

impl ChaosClientLayer {
    /// A layer for calls to `target` that forwards the chaos context:
    /// `ChaosClientLayer::builder(chaos).target(target).build()`.
    pub fn new(chaos: &Chaos, target: impl Into<String>) -> ChaosClientLayer {
        ChaosClientLayer::builder(chaos).target(target).build()
    }

    /// Starts building a layer, as [`ChaosLayer::builder`](crate::ChaosLayer::builder)
    /// does for the server: no target name, forwarding the context, `x-chaos-injected` on
    /// injected responses.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use chaos_tower::ChaosClientLayer;
    ///
    /// let chaos = Chaos::new();
    /// // A third party: faults, but the chaos headers stay inside the fleet.
    /// let stripe = ChaosClientLayer::builder(&chaos).target("stripe").forward(false).build();
    /// # let _ = stripe;
    /// ```
    pub fn builder(chaos: &Chaos) -> ChaosClientLayerBuilder {
        ChaosClientLayerBuilder {
            chaos: chaos.clone(),
            target: String::new(),
            forward: true,
            injected_header: Some(chaos_core::headers::X_CHAOS_INJECTED),
        }
    }

    /// A layer for calls to `target`; `forward: false` injects faults but does not send
    /// the chaos headers on (for calls leaving your fleet).
    #[deprecated(
        since = "0.1.0",
        note = "use `ChaosClientLayer::builder(chaos).target(target).forward(forward).build()`"
    )]
    pub fn with_options(
        chaos: &Chaos,
        target: impl Into<String>,
        forward: bool,
    ) -> ChaosClientLayer {
        ChaosClientLayer::builder(chaos)
            .target(target)
            .forward(forward)
            .build()
    }

    /// The same layer with its settings kept for the life of the process, so a clone of
    /// its services is a pointer copy rather than a reference count. For a client built
    /// once at start-up.
    #[deprecated(
        since = "0.1.0",
        note = "use `ChaosClientLayer::builder(chaos).target(target).build_static()`"
    )]
    #[must_use]
    pub fn leak(self) -> ChaosClientLayer {
        let shared = match self.shared {
            Settings::Static(s) => Settings::Static(s),
            Settings::Counted(a) => Settings::leaked(Shared {
                chaos: a.chaos.clone(),
                target: a.target.clone(),
                forward: a.forward,
                injected_header: a.injected_header.clone(),
                steady: a.steady.clone(),
            }),
        };
        ChaosClientLayer { shared }
    }

    /// The steady state the layer records: the engine's for point `client` and its target.
    pub fn steady_state(&self) -> Arc<SteadyState> {
        self.shared.steady.clone()
    }
}

/// Builds a [`ChaosClientLayer`].
#[derive(Debug)]
#[must_use]
pub struct ChaosClientLayerBuilder {
    chaos: Chaos,
    target: String,
    forward: bool,
    injected_header: Option<HeaderName>,
}

impl ChaosClientLayerBuilder {
    /// The dependency's name, matched by a rule's `target` (and a directive's `target=`).
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = name.into();
        self
    }

    /// Whether to send the chaos context on (`x-chaos`, `x-chaos-signature`,
    /// `x-test-traffic`, and with `otel` the `baggage` members). Default `true`; turn it
    /// off for calls leaving your fleet.
    pub fn forward(mut self, yes: bool) -> Self {
        self.forward = yes;
        self
    }

    /// The response header naming the rule that injected a response
    /// (`x-chaos-injected` by default); `None` leaves responses unmarked.
    pub fn injected_header(mut self, name: Option<HeaderName>) -> Self {
        self.injected_header = name;
        self
    }

    /// Builds the layer: one allocation, freed with the last service it made. Each clone
    /// of a service costs one atomic reference count.
    pub fn build(self) -> ChaosClientLayer {
        ChaosClientLayer {
            shared: Settings::counted(self.settings()),
        }
    }

    /// Builds the layer for the life of the process: its settings are never freed, and a
    /// clone of a service is a pointer copy. For a client built once at start-up.
    pub fn build_static(self) -> ChaosClientLayer {
        ChaosClientLayer {
            shared: Settings::leaked(self.settings()),
        }
    }

    fn settings(self) -> Shared {
        self.chaos.declare("client", &self.target);
        Shared {
            steady: self.chaos.steady_state("client", &self.target),
            chaos: self.chaos,
            target: self.target.into_boxed_str(),
            forward: self.forward,
            injected_header: self.injected_header,
        }
    }
}

impl<S> Layer<S> for ChaosClientLayer {
    type Service = ChaosClient<S>;

    fn layer(&self, inner: S) -> ChaosClient<S> {
        ChaosClient {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The client-side chaos middleware, made by [`ChaosClientLayer`].
#[derive(Clone)]
pub struct ChaosClient<S> {
    inner: S,
    shared: Settings<Shared>,
}

crate::accessors::middleware_accessors!(ChaosClient);

impl<S, ReqB, ResB> Service<Request<ReqB>> for ChaosClient<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = bytes::Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ChaosResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let sh = &*self.shared;
        let ext = req.extensions().get::<ChaosContext>().cloned();
        let (decision, obs) = ChaosContext::with_current(|cur| {
            let ctx = ext.as_ref().or(cur);
            // Else the current OpenTelemetry context's baggage (feature `otel`), as the
            // reqwest middleware does.
            #[cfg(feature = "otel")]
            let from_otel = match ctx {
                None => sh.chaos.context_from_current_otel(),
                Some(_) => None,
            };
            #[cfg(feature = "otel")]
            let ctx = ctx.or(from_otel.as_ref());
            if sh.forward
                && let Some(c) = ctx
            {
                c.forward_to(req.headers_mut());
            }
            let mut obs = sh.chaos.observe()?;
            let view = RequestView::new(Point::Client, &sh.target)
                .method(req.method())
                .uri(req.uri())
                .headers(req.headers())
                .context(ctx);
            Some((sh.chaos.decide_observed(&view, Some(&mut obs)), obs))
        })
        .map_or((Decision::Pass, None), |(d, o)| (d, Some(o)));
        let settings = obs.as_ref().map(|_| self.shared.clone());
        let exchange = Exchange::start(decision, &mut self.inner, req, None, HttpSide::Client, obs);
        ResponseFuture::new(exchange, settings)
    }
}
