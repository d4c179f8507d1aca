//! Deciding for one request: which rule (or trusted directive) injects, under its
//! schedule, rate, sticky cohort and limits.
//!
//! The [`Decider`] reads the rules the engine compiled, each rule's runtime state
//! ([`RuleState`]), the random source and the concurrency slots. A decision takes the
//! slots it needs as one [`Permit`]; every way a rule can be left alone after that (its
//! hit limit reached) gives them back by dropping it. What it meets on the way (a rule
//! matched, in which cohort; a shadow rule that would have injected; a guard breach) it
//! tells its [`Sink`]; the rules a request matched are noted as its [`touches`], carried
//! to where its outcome is seen.

mod decider;
mod permit;
mod rng;
mod rule;
mod state;
pub mod touches;

pub(crate) use self::decider::{Decided, Decider, Sink};
pub(crate) use self::permit::Permit;
pub(crate) use self::rng::RngSource;
pub(crate) use self::rule::CompiledRule;
pub(crate) use self::state::RuleState;
pub(crate) use self::touches::{Observation, Settled, Touch, Touches, touch_in_scope};
