//! The hops a scenario's requests reach (feature `test-util`): what an exploration reads.
//!
//! While a recording ([`Chaos::record_hops`](crate::Chaos::record_hops)) lives, the engine
//! is armed, and every decision for a request that carries the recording's scenario tag
//! notes its point and target here, whether or not anything was injected (what was, the
//! journal says). With no recording alive the decision path pays one relaxed load of a
//! flag, under `test-util` only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::request::RequestView;

/// One call at a chaos point that a scenario's request reached, in the order reached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hop {
    /// The point: `server`, `client`, `sql` or a name given to `Chaos::inject`.
    pub point: String,
    /// The target (empty: an adapter given no target name).
    pub target: String,
    /// Which call of this point and target it was in the scenario, from 1.
    pub call: u32,
}

/// One recording's hops.
pub(crate) type Calls = Arc<Mutex<Vec<Hop>>>;

/// The recordings alive, by scenario.
#[derive(Default)]
pub(crate) struct Recorders {
    /// `all` is not empty: read on the decision path, where `all`'s lock is not taken.
    on: AtomicBool,
    all: Mutex<Vec<(Box<str>, Calls)>>,
}

impl Recorders {
    /// Whether any recording is alive: one relaxed load.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Notes `req` in the recordings of its scenarios.
    #[cold]
    pub(crate) fn note(&self, req: &RequestView<'_>) {
        let Some(ctx) = req.context else { return };
        if ctx.scenarios().is_empty() {
            return;
        }
        let all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        for (scenario, calls) in all.iter() {
            if !ctx.has_scenario(scenario) {
                continue;
            }
            let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
            let (point, target) = (req.point.name(), req.target);
            let before = calls
                .iter()
                .filter(|h| h.point == point && h.target == target)
                .count();
            calls.push(Hop {
                point: point.to_owned(),
                target: target.to_owned(),
                call: u32::try_from(before + 1).unwrap_or(u32::MAX),
            });
        }
    }

    pub(crate) fn add(&self, scenario: &str) -> Calls {
        let calls = Calls::default();
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.push((scenario.into(), calls.clone()));
        self.on.store(true, Ordering::Relaxed);
        calls
    }

    pub(crate) fn remove(&self, calls: &Calls) {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|(_, c)| !Arc::ptr_eq(c, calls));
        self.on.store(!all.is_empty(), Ordering::Relaxed);
    }
}
