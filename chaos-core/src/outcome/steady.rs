//! The steady state: every injection point's outcomes and latency, counted cheaply.
//!
//! Each point records each piece of work it let through or failed while any chaos is
//! possible (the engine is armed): whether it was an error (as that point defines it: an
//! HTTP 5xx or a failing gRPC status, a failed call or statement), how long it took, and
//! whether chaos injected into it. Injected work is counted apart, so the organic steady
//! state is never polluted by the experiment. Counters are atomics in per-second slots,
//! spread over a few shards so threads rarely share a cache line: recording takes no lock
//! and allocates nothing. A snapshot sums the slots of a window.
//!
//! The engine keeps one [`SteadyState`] per point and target
//! ([`Chaos::steady_state`](crate::Chaos::steady_state)), made on first use and shared by
//! every adapter recording there, so building many layers for one service costs one.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use chaos_core::Chaos;
//!
//! let chaos = Chaos::new();
//! let checkout = chaos.steady_state("server", "checkout");
//! checkout.record(Instant::now(), false, false);
//! checkout.record(Instant::now(), true, false);
//! let seen = chaos.steady_state("server", "checkout").snapshot(Duration::from_secs(10));
//! assert_eq!((seen.requests, seen.errors), (2, 1));
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::figures::Tally;
use super::ring::{Counts, Outcomes, Ring};
use crate::sync::atomic::{AtomicU32, Ordering};

/// One-second slots kept: the longest window a snapshot can cover.
const SLOTS: u64 = 64;
/// Shards, so concurrent threads mostly write to different cache lines.
const SHARDS: usize = 4;

/// The steady state observed at one point and target.
///
/// Get it from [`Chaos::steady_state`](crate::Chaos::steady_state); see the
/// [module docs](self).
pub struct SteadyState {
    point: Box<str>,
    target: Box<str>,
    /// One-second slots, a lane per shard.
    seconds: Ring<Second, { SLOTS as usize }>,
}

/// One second of a shard: the organic outcomes, and the injected ones counted apart.
/// Each on 128 bytes of its own, so the seconds two threads are counting in never share
/// a pair of cache lines (adjacent-line prefetch fetches them in pairs).
#[repr(align(128))]
struct Second {
    organic: Outcomes,
    injected: AtomicU32,
    injected_errors: AtomicU32,
}

impl Counts for Second {
    fn new() -> Second {
        Second {
            organic: Outcomes::new(),
            injected: AtomicU32::new(0),
            injected_errors: AtomicU32::new(0),
        }
    }

    fn clear(&self) {
        self.organic.clear();
        self.injected.store(0, Ordering::Relaxed);
        self.injected_errors.store(0, Ordering::Relaxed);
    }
}

/// A summary of the outcomes in a window.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Observed {
    /// Organic responses (nothing injected).
    pub requests: u64,
    /// Organic responses that were errors.
    pub errors: u64,
    /// Responses to requests chaos injected a fault into.
    pub injected: u64,
    /// Injected responses that were errors (including dropped connections).
    pub injected_errors: u64,
    /// The organic 99th percentile latency (the upper bound of its bucket, within 50%;
    /// about 50 s for anything slower), `None` without organic responses.
    pub p99: Option<Duration>,
}

impl Observed {
    /// Organic errors over organic requests, `0.0` without requests.
    pub fn error_rate(&self) -> f64 {
        super::figures::error_rate(self.requests, self.errors)
    }
}

impl fmt::Debug for SteadyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SteadyState")
            .field("point", &self.point)
            .field("target", &self.target)
            .field("last_minute", &self.snapshot(Duration::from_secs(60)))
            .finish()
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn shard_index() -> usize {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

impl SteadyState {
    fn new(point: &str, target: &str) -> SteadyState {
        let base = Instant::now();
        SteadyState {
            point: point.into(),
            target: target.into(),
            seconds: Ring::new(base, Duration::from_secs(1), SHARDS),
        }
    }

    /// The point it observes.
    pub fn point(&self) -> &str {
        &self.point
    }

    /// The target it observes (empty for a point with no name).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Records one outcome: work that began at `start`, whether it was an error, whether
    /// chaos injected into it. No lock, no allocation.
    #[inline]
    pub fn record(&self, start: Instant, error: bool, injected: bool) {
        self.record_at(start, Instant::now(), error, injected);
    }

    /// [`record`](Self::record) with the clock already read.
    #[inline]
    pub(crate) fn record_at(&self, start: Instant, now: Instant, error: bool, injected: bool) {
        let Some(second) = self.seconds.slot(now, shard_index()) else {
            return;
        };
        if injected {
            second.injected.fetch_add(1, Ordering::Relaxed);
            if error {
                second.injected_errors.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            second
                .organic
                .add(now.saturating_duration_since(start), error);
        }
    }

    /// Every second of the last `window` (whole seconds, at most 64 s).
    fn seconds(&self, window: Duration, mut each: impl FnMut(&Second)) {
        let span = window.as_secs().clamp(1, SLOTS);
        self.seconds.window(Instant::now(), span, &mut each);
    }

    /// The responses of the last `window` (whole seconds, at most 64 s).
    pub fn snapshot(&self, window: Duration) -> Observed {
        let mut organic = Tally::default();
        let (mut injected, mut injected_errors) = (0, 0);
        self.seconds(window, |s| {
            s.organic.add_to(&mut organic);
            injected += u64::from(s.injected.load(Ordering::Relaxed));
            injected_errors += u64::from(s.injected_errors.load(Ordering::Relaxed));
        });
        Observed {
            requests: organic.requests,
            errors: organic.errors,
            injected,
            injected_errors,
            p99: organic.p99(),
        }
    }

    /// Adds the organic responses of the last `window` to `tally` (for the service guard).
    pub(crate) fn add_organic(&self, window: Duration, tally: &mut Tally) {
        self.seconds(window, |s| s.organic.add_to(tally));
    }
}

/// Every point and target's steady state, for the engine: read without a lock, added to
/// under one.
#[derive(Default)]
pub(crate) struct Registry {
    all: ArcSwap<Vec<Arc<SteadyState>>>,
    writer: Mutex<()>,
}

impl Registry {
    /// The steady state of `point` and `target`, made on first use.
    pub(crate) fn get(&self, point: &str, target: &str) -> Arc<SteadyState> {
        if let Some(s) = self.find(point, target) {
            return s;
        }
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.find(point, target) {
            return s;
        }
        let made = Arc::new(SteadyState::new(point, target));
        let mut all = Vec::clone(&self.all.load());
        all.push(made.clone());
        self.all.store(Arc::new(all));
        made
    }

    fn find(&self, point: &str, target: &str) -> Option<Arc<SteadyState>> {
        self.all
            .load()
            .iter()
            .find(|s| &*s.point == point && &*s.target == target)
            .cloned()
    }

    /// Records at `point` and `target` without taking a reference (the generic injection
    /// point, whose names come with each call).
    pub(crate) fn record(
        &self,
        point: &str,
        target: &str,
        start: Instant,
        error: bool,
        injected: bool,
    ) {
        let all = self.all.load();
        match all
            .iter()
            .find(|s| &*s.point == point && &*s.target == target)
        {
            Some(s) => s.record(start, error, injected),
            None => {
                drop(all);
                self.get(point, target).record(start, error, injected);
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<SteadyState>> {
        Vec::clone(&self.all.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_organic_and_injected_apart() {
        let s = SteadyState::new("server", "");
        let start = Instant::now();
        for i in 0..200 {
            s.record(start, i % 10 == 0, false);
        }
        s.record(start, true, true);
        s.record(start, false, true);
        let o = s.snapshot(Duration::from_secs(30));
        assert_eq!((o.requests, o.errors), (200, 20));
        assert_eq!((o.injected, o.injected_errors), (2, 1));
        assert!((o.error_rate() - 0.1).abs() < 1e-9);
        assert!(o.p99.is_some());
    }

    #[test]
    fn p99_tracks_the_slow_tail() {
        let s = SteadyState::new("server", "");
        let now = Instant::now();
        // 95 fast responses and 5 that took two seconds: p99 is in the slow bucket.
        for _ in 0..95 {
            s.record(now, false, false);
        }
        let slow = now - Duration::from_secs(2);
        for _ in 0..5 {
            s.record(slow, false, false);
        }
        let p99 = s.snapshot(Duration::from_secs(10)).p99.unwrap();
        assert!(
            p99 >= Duration::from_secs(2) && p99 < Duration::from_secs(3),
            "{p99:?}"
        );
    }
}
