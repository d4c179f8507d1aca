use std::fmt;
use std::sync::Arc;

use chaos_core::Chaos;
use chaos_core::steady::SteadyState;
use http::HeaderName;
use tower_layer::Layer;

use super::ChaosService;
use crate::settings::Settings;

/// Settings shared by every clone of a server layer's service.
pub(crate) struct Shared {
    pub(crate) chaos: Chaos,
    pub(crate) target: Box<str>,
    pub(crate) trust_boundary: bool,
    pub(crate) injected_header: Option<HeaderName>,
    /// Whether a request's context is also put in its extensions.
    pub(crate) extension: bool,
    /// The engine's steady state for `server` and this target.
    pub(crate) steady: Arc<SteadyState>,
}

/// A [`Layer`] that makes requests fail on purpose: the server-side injection point
/// (point `server`).
///
/// See the [crate docs](crate) for an example and for where to put it.
///
/// A layer is cheap to clone: its settings are allocated once, when it is built, and
/// shared by every service it makes. [`ChaosLayerBuilder::build`] frees them with the last
/// service; [`ChaosLayerBuilder::build_static`] keeps them for the life of the process, so
/// the clone of the service that hyper makes per request is a pointer copy rather than a
/// reference count.
#[derive(Clone)]
pub struct ChaosLayer {
    pub(crate) shared: Settings<Shared>,
}

impl fmt::Debug for ChaosLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("target", &self.shared.target)
            .field("trust_boundary", &self.shared.trust_boundary)
            .field("injected_header", &self.shared.injected_header)
            .field("context_extension", &self.shared.extension)
            .finish_non_exhaustive()
    }
}

impl ChaosLayer {
    /// A layer with the default settings: no target name, not a trust boundary,
    /// `x-chaos-injected` on injected responses.
    pub fn new(chaos: &Chaos) -> ChaosLayer {
        ChaosLayer::builder(chaos).build()
    }

    /// Starts building a layer.
    pub fn builder(chaos: &Chaos) -> ChaosLayerBuilder {
        ChaosLayerBuilder {
            chaos: chaos.clone(),
            target: String::new(),
            trust_boundary: false,
            injected_header: Some(chaos_core::headers::X_CHAOS_INJECTED),
            extension: false,
        }
    }

    /// The engine the layer decides with.
    pub fn chaos(&self) -> &Chaos {
        &self.shared.chaos
    }

    /// The steady state this layer records (only while the engine is armed: rules loaded
    /// or directives possible): the engine's for point `server` and the layer's target,
    /// shared with every layer of that target
    /// ([`Chaos::steady_state`](chaos_core::Chaos::steady_state)).
    pub fn steady_state(&self) -> Arc<SteadyState> {
        self.shared.steady.clone()
    }
}

impl<S> Layer<S> for ChaosLayer {
    type Service = ChaosService<S>;

    fn layer(&self, inner: S) -> ChaosService<S> {
        ChaosService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`ChaosLayer`].
#[derive(Debug)]
#[must_use]
pub struct ChaosLayerBuilder {
    chaos: Chaos,
    target: String,
    trust_boundary: bool,
    injected_header: Option<HeaderName>,
    extension: bool,
}

impl ChaosLayerBuilder {
    /// The service's name, matched by a rule's `target` (and a directive's `target=`).
    /// Without one, only rules and directives that name no target apply.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = name.into();
        self
    }

    /// Marks this layer as a trust boundary (an edge facing the internet): `x-chaos`,
    /// `x-chaos-signature` and `x-test-traffic` are removed from requests before the
    /// inner service sees them, unless they carry a valid signature. Nothing outside can
    /// tag a request with a scenario, mark it as test traffic or forward a directive.
    pub fn trust_boundary(mut self, yes: bool) -> Self {
        self.trust_boundary = yes;
        self
    }

    /// The response header naming the rule that injected a response
    /// (`x-chaos-injected` by default); `None` turns attribution headers off.
    pub fn injected_header(mut self, name: Option<HeaderName>) -> Self {
        self.injected_header = name;
        self
    }

    /// Also puts each tagged request's [`ChaosContext`](chaos_core::ChaosContext) in its
    /// extensions, for code that reads it there (axum's `Extension` extractor). Off by
    /// default: handlers and the client layers below see it with
    /// [`ChaosContext::current`](chaos_core::ChaosContext::current) (an axum handler with
    /// the `RequestContext` extractor, feature `axum`), and an insert into
    /// `http::Extensions` costs three allocations per request.
    pub fn context_extension(mut self, yes: bool) -> Self {
        self.extension = yes;
        self
    }

    /// Builds the layer: one allocation, freed with the last service it made. Each
    /// per-request clone of a service costs one atomic reference count.
    pub fn build(self) -> ChaosLayer {
        ChaosLayer {
            shared: Settings::counted(self.settings()),
        }
    }

    /// Builds the layer for the life of the process: its settings are never freed, and a
    /// per-request clone of a service is a pointer copy. For the layer of a service built
    /// once at start-up; a test suite that builds a layer per test wants
    /// [`build`](Self::build).
    pub fn build_static(self) -> ChaosLayer {
        ChaosLayer {
            shared: Settings::leaked(self.settings()),
        }
    }

    fn settings(self) -> Shared {
        self.chaos.declare("server", &self.target);
        Shared {
            steady: self.chaos.steady_state("server", &self.target),
            chaos: self.chaos,
            target: self.target.into_boxed_str(),
            trust_boundary: self.trust_boundary,
            injected_header: self.injected_header,
            extension: self.extension,
        }
    }
}
