//! OpenTelemetry (feature `otel`): the engine's metrics, and the chaos context in W3C
//! `baggage`.
//!
//! # Metrics
//!
//! Recorded through the `opentelemetry` API crate, on the [`Meter`](opentelemetry::metrics::Meter) given to
//! [`Builder::meter`](crate::Builder::meter), else on the global meter provider as
//! it is when the engine first records something (so an application may install its
//! provider after building the engine). The SDK, its exporters and views stay the
//! application's choice.
//!
//! | instrument | kind | attributes | when |
//! |---|---|---|---|
//! | [`chaos.injections`](INJECTIONS) | counter | `rule`, `fault`, `point`, `target`, `mode` | a fault is injected (`mode=inject`) or a shadow rule would have injected (`mode=shadow`) |
//! | [`chaos.injected_delay`](INJECTED_DELAY) | histogram, s | `rule`, `point`, `target` | a delay is injected: the delay drawn |
//! | [`chaos.aborts`](ABORTS) | counter | `rule`, `reason` | a rule stops: `guard`, `service_guard`, `budget` (its `max_errors` spent), `manual`; the kill switch turning on counts once as `rule=*`, `reason=kill_switch` |
//! | [`chaos.header_rejected`](HEADER_REJECTED) | counter | `reason` | a part of a chaos header is ignored, with the stable code of [`HeaderError::code`](crate::context::HeaderError::code); `bad_signature` for a refused signature, `directives_refused` for directives neither allowed nor signed |
//! | [`chaos.cohort.requests`](COHORT_REQUESTS) | counter | `rule`, `cohort` | a request a rule matched has its outcome: `cohort=experiment` (the fault was applied, or would have been for a shadow rule) or `control` (matched, left alone) |
//! | [`chaos.cohort.errors`](COHORT_ERRORS) | counter | `rule`, `cohort` | the same, when the outcome was an error |
//! | [`chaos.cohort.duration`](COHORT_DURATION) | histogram, s | `rule`, `cohort` | the same: the request's latency |
//!
//! A rule's attributes are its id, its fault's kind (`delay`, `abort`, `drop`, `error`,
//! `body`), its point and its target as written (`*` when it has none), so the number of
//! series grows with the rules, never with the traffic. They are built once, when the rule
//! is loaded. A per-request directive counts as `rule=x-chaos` with the request's point and
//! target. A request that matches nothing records nothing and allocates nothing.
//!
//! # Baggage
//!
//! With this feature, [`ChaosContext::forward_to`](crate::ChaosContext::forward_to) also writes the context as W3C baggage
//! members, merged with the request's own `baggage` (other members are kept as they are;
//! ours replace any earlier ones; nothing is added past the W3C limits of 64 members and
//! 8192 bytes):
//!
//! | member | value |
//! |---|---|
//! | `chaos` | the `x-chaos` value, percent-encoded |
//! | `chaos-signature` | the `x-chaos-signature` value, for a signed context |
//! | `test-traffic` | `1` |
//!
//! A signed context survives a hop that forwards only `baggage`: the signature is a MAC
//! over the exact `x-chaos` value, and both travel byte for byte. The hop counter travels
//! inside the signature (`h=N`), as it does in the header. Read back with
//! [`Chaos::context_from_baggage`](crate::Chaos::context_from_baggage) (a `baggage` header) or
//! [`Chaos::context_from_otel`](crate::Chaos::context_from_otel) (an OpenTelemetry [`Context`](opentelemetry::Context)'s baggage), a context is
//! checked exactly as headers are: directives need `allow_directives` or a valid
//! signature, so baggage an outside caller sends cannot switch a fault on by itself.

mod metrics;

pub(crate) use self::metrics::{Metrics, RuleAttrs};
pub use crate::context::baggage::{BAGGAGE, strip_baggage};

/// Counter: faults injected, or that a shadow rule would have injected.
pub const INJECTIONS: &str = "chaos.injections";
/// Histogram (seconds): the delays injected.
pub const INJECTED_DELAY: &str = "chaos.injected_delay";
/// Counter: rules stopped, by reason.
pub const ABORTS: &str = "chaos.aborts";
/// Counter: parts of chaos headers ignored, by reason.
pub const HEADER_REJECTED: &str = "chaos.header_rejected";
/// Counter: requests a rule matched, by cohort, counted at their outcome.
pub const COHORT_REQUESTS: &str = "chaos.cohort.requests";
/// Counter: of those, the ones whose outcome was an error.
pub const COHORT_ERRORS: &str = "chaos.cohort.errors";
/// Histogram (seconds): their latency.
pub const COHORT_DURATION: &str = "chaos.cohort.duration";
