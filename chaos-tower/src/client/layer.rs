//! The client layer and its builder: the settings every service it makes shares.

use std::fmt;
use std::sync::Arc;

use chaos_core::Chaos;
use chaos_core::steady::SteadyState;
use http::HeaderName;
use tower_layer::Layer;

use super::ChaosClient;
use crate::settings::Settings;

/// Settings shared by every clone of a client layer's service.
pub(crate) struct Shared {
    pub(crate) chaos: Chaos,
    pub(crate) target: Box<str>,
    pub(crate) forward: bool,
    pub(crate) injected_header: Option<HeaderName>,
    pub(crate) steady: Arc<SteadyState>,
}

/// A [`Layer`] for outbound calls to one dependency (point `client`). See the
/// [module docs](crate::client).
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
