//! Outcomes, and what is judged from them.
//!
//! Every piece of work an adapter lets through or fails while the engine is armed has an
//! outcome: an error or not, and a latency. This module counts them and judges them:
//!
//! * [`steady`]: every point's outcomes, organic and injected apart, one [`SteadyState`]
//!   per point and target;
//! * each rule's cohorts (experiment and control), its guard, its error budget and its
//!   ramp, and the service guard that judges the organic traffic: the types of the
//!   [`Snapshot`](crate::Snapshot) re-exported here ([`CohortsSnapshot`], [`Breach`],
//!   [`AbortInfo`], [`RampStatus`], [`ServiceGuardSnapshot`], ...);
//! * [`Figures`]: requests, errors and a p99, the one way they are reported.
//!
//! Windows are rings of slots counted with relaxed atomics: recording takes no lock and
//! allocates nothing.

mod budget;
pub(crate) mod cohorts;
mod figures;
mod guard;
mod ramp;
pub(crate) mod ring;
mod rule;
pub mod steady;

use std::time::Duration;

#[cfg(all(test, chaos_loom))]
pub(crate) use self::budget::ErrorBudget;
pub(crate) use self::cohorts::Cohort;
#[cfg(feature = "test-util")]
pub(crate) use self::cohorts::DEFAULT_SPAN;
pub use self::cohorts::{CohortFigures, CohortsSnapshot, DurationHistogram};
#[cfg(feature = "otel")]
pub(crate) use self::figures::SECONDS;
pub(crate) use self::figures::Tally;
pub use self::figures::{Figures, error_rate};
pub(crate) use self::guard::ServiceGuard;
pub use self::guard::{AbortInfo, Breach, GuardState, ServiceGuardSnapshot};
pub use self::ramp::RampStatus;
pub(crate) use self::rule::RuleOutcomes;
pub use self::steady::{ORGANIC_TIMINGS_PER_SECOND, Observed, SteadyState};
pub(crate) use self::steady::{Registry, timings_wanted};

/// Nanoseconds, saturating.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
