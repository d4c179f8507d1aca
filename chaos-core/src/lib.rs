//! `fn decide(&Request) -> Pass | Inject(Fault)`: the rules engine of in-process failure
//! injection.
//!
//! # Overview
//!
//! chaos-core decides which requests get which fault, and carries the chaos context of a
//! request from service to service. The adapter crates (`chaos-tower` for servers and
//! tower clients, `chaos-reqwest`, `chaos-sqlx`) ask it at their injection point and apply
//! the answer; any other async work can use [`Chaos::inject`] directly.
//!
//! * [`rules`]: one schema read from JSON, TOML or YAML, validated as a whole, with
//!   errors that say where (file, line, column), which rule and field, and why.
//! * [`Chaos`]: the engine handle. Rules sit behind an `ArcSwap`; readers never block.
//!   Replace, add, remove, kill, resume; a [`Snapshot`] of rules, state and counters;
//!   [`Event`]s for subscribers. An engine with nothing to do costs one relaxed atomic
//!   load per request.
//! * [`context`]: the `x-chaos` / `x-test-traffic` header grammar, signed directives, the
//!   task-local scope, and formatting for the next hop.
//! * [`Injection`]: a decided fault, and the one [`Action`] (any point) or [`HttpAction`]
//!   (HTTP points) it means where it was decided: wait ([`Wait`]), answer, fail, or wrap
//!   the body. Every adapter maps these to its world in one place.
//! * [`Chaos::outbound`]: the one sequence of an outbound call (its context, forwarded;
//!   the decision; the observation), run by every client adapter over an
//!   [`OutboundCall`]; [`ChaosErrorExt`] finds the injected fault behind any error.
//! * [`observe`]: the [`Observation`] an adapter records its outcome with, so each rule's
//!   cohorts are judged by what users saw (see below).
//! * [`outcome`]: outcomes and what is judged from them: every point's steady state
//!   ([`SteadyState`], organic and injected apart), the cohorts, guards, budgets and
//!   ramps, and [`outcome::Figures`].
//! * [`reload`]: hot reload from a watched file (`CHAOS_RULES=path`), ConfigMap-safe.
//! * `testing` (feature `test-util`): rule guards, per-test scenarios, the journal, pause
//!   points, experiments as tests, and failure exploration (`Explore`).
//!
//! # Example
//!
//! ```
//! use chaos_core::{Chaos, Decision, Point, RequestView};
//! use chaos_core::rules::{Format, RuleSet};
//!
//! let chaos = Chaos::new();
//! chaos.replace(RuleSet::parse(Format::Yaml, r#"
//! rules:
//!   - id: payments-slow
//!     point: client
//!     target: payments
//!     match: { scenario: gameday-7 }
//!     fault: { delay: 300ms }
//! "#)?)?;
//!
//! // An inbound request carrying `x-chaos: scenario=gameday-7`...
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-chaos", "scenario=gameday-7".parse().unwrap());
//! let ctx = chaos.context_from_headers(&headers);
//!
//! // ...makes its outbound call to `payments` slow, and nothing else.
//! let call = RequestView::new(Point::Client, "payments").context(ctx.as_ref());
//! let Decision::Inject(fault) = chaos.decide(&call) else { unreachable!() };
//! assert_eq!(fault.delay(), Some(std::time::Duration::from_millis(300)));
//!
//! let other = RequestView::new(Point::Client, "inventory").context(ctx.as_ref());
//! assert!(!chaos.decide(&other).is_inject());
//! # Ok::<(), chaos_core::rules::RulesError>(())
//! ```
//!
//! # Experiments that stop themselves
//!
//! Every rule sorts the requests it matched into two **cohorts**: the **experiment** (its
//! fault was applied; in shadow mode, would have been) and **control** (matched, and left
//! alone by the rate, the sticky key, a ramp step, a schedule or a limit). Each request's
//! user-visible outcome (error or not, latency) is counted in its cohorts where it leaves
//! the process: at the server layer's response, whichever hop (`server`, `client`, `sql`,
//! a named point) the fault was injected at. Without a server layer (a worker calling
//! [`Chaos::inject`]) it is the injected operation's result. Counting takes no lock and
//! allocates nothing; a request no rule matched counts in no cohort.
//!
//! On those cohorts, per rule:
//!
//! * a **guard** (`error_rate_above`, `p99_above`, `vs_control` comparing experiment with
//!   control, over `window`, from `min_requests`) aborts the rule within a tenth of its
//!   window (at most a second) of a breach: it injects nothing more, and the [`Snapshot`]
//!   says which condition broke, what was observed, the threshold and when, with an
//!   [`Event::RuleAborted`] and a warning;
//! * an **error budget** (`max_errors: N`) retires the rule once its experiment has caused
//!   N user-visible errors, never more, however many requests are in flight;
//! * a **ramp** with a guard moves to its next step only after a whole step that held and
//!   saw `min_requests`.
//!
//! The rules document's own `guard` judges the organic traffic (what no fault touched): a
//! breach aborts every rule and turns the kill switch on.
//!
//! With the `otel` feature the cohorts are also OpenTelemetry metrics
//! (`chaos.cohort.requests`, `chaos.cohort.errors`, `chaos.cohort.duration`, by rule and
//! cohort), next to `chaos.injections` and `chaos.aborts`: see [`otel`].
//!
//! ```
//! use chaos_core::{Chaos, RuleStatus};
//! use chaos_core::rules::{Format, RuleSet};
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chaos = Chaos::new();
//! chaos.replace(RuleSet::parse(Format::Yaml, r#"
//! rules:
//!   - id: queue-down
//!     point: queue.publish
//!     fault: { error: unavailable }
//!     rate: 50%
//!     guard: { error_rate_above: 5%, min_requests: 20, window: 10s }
//! "#)?)?;
//! for _ in 0..200 {
//!     let _ = chaos.inject("queue.publish", "orders", async {}).await;
//!     tokio::time::advance(std::time::Duration::from_millis(10)).await;
//! }
//! let rule = &chaos.snapshot().rules[0];
//! assert_eq!(rule.state, RuleStatus::Aborted);
//! let breach = rule.abort.as_ref().unwrap().breach.as_ref().unwrap();
//! assert_eq!((breach.condition.as_str(), breach.threshold.as_str()), ("error_rate_above", "5%"));
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! Name | Description | Default?
//! ---|---|---
//! `test-util` | [`testing`] helpers: rule guards, scenarios, journal, pause points, failure exploration. Keeps a journal of every injection in memory (the last 100 000): for tests, not production | no
//! `http-body` | [`body::FaultBody`], [`respond`] and [`Injection::http_action`], for HTTP adapters | no
//! `otel` | [`otel`]: OpenTelemetry metrics (`chaos.injections`, `chaos.aborts`, the cohorts, ...) through the API crate, and the context in W3C `baggage`, read and written | no
//!
//! # Cancel safety
//!
//! Every future here may be dropped at any point. Dropping an injected delay or hang
//! releases its `max_active` slot; nothing is left behind.
//!
//! # Stability
//!
//! The header grammar, rule schema and names in `DESIGN.md` are the contract. The Rust API
//! is pre-1.0.
//!
//! # Safety
//!
//! `#![forbid(unsafe_code)]`.

#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link to `otel`, which exists with the `otel` feature.
#![cfg_attr(not(feature = "otel"), allow(rustdoc::broken_intra_doc_links))]
#![cfg_attr(test, allow(clippy::float_cmp))]

#[cfg(feature = "http-body")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-body")))]
pub mod body;
pub mod context;
mod decision;
mod engine;
#[cfg(feature = "test-util")]
mod hops;
mod index;
mod inject;
#[cfg(feature = "test-util")]
mod journal;
mod kill;
mod known;
#[cfg(all(test, chaos_loom))]
mod models;
mod names;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
pub mod outcome;
#[cfg(feature = "test-util")]
mod pause;
mod rate_limit;
mod request;
#[cfg(feature = "http-body")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-body")))]
pub mod respond;
pub mod rules;
mod sync;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

/// The chaos header names and where they are found: [`context::headers`], under its
/// former path.
pub use self::context::headers;
/// Observing work: the [`Observation`] an adapter records an outcome with, and the rules
/// the work matched, each with its cohort, noted where the outcome is seen.
pub use self::decision::touches as observe;
pub use self::engine::reload;
/// The steady state: [`outcome::steady`], under its former path.
pub use self::outcome::steady;

pub use self::context::{ChaosContext, ChaosFutureExt};
pub use self::decision::touches::Observation;
pub use self::engine::{
    AbortCount, Budget, Builder, Chaos, EngineStats, Event, ReasonCount, RuleCounters,
    RuleSnapshot, RuleStatus, Snapshot,
};
pub use self::inject::{Action, ChaosErrorExt, Decision, InjectedFault, Injection, Inside, Wait};
#[cfg(feature = "http-body")]
pub use self::inject::{HttpAction, HttpSide};
pub use self::known::{KnownTarget, TargetWarning};
pub use self::outcome::{
    AbortInfo, Breach, CohortFigures, CohortsSnapshot, DurationHistogram, GuardState, Observed,
    RampStatus, ServiceGuardSnapshot, SteadyState,
};
pub use self::request::{OutboundCall, Point, RequestView};

/// A type-erased error, as tower uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
