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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::window::{BUCKETS, Sum, bucket, quantile};

/// One-second slots kept: the longest window a snapshot can cover.
const SLOTS: usize = 64;
/// Shards, so concurrent threads mostly write to different cache lines.
const SHARDS: usize = 4;

/// The steady state observed at one point and target.
///
/// Get it from [`Chaos::steady_state`](crate::Chaos::steady_state); see the
/// [module docs](self).
pub struct SteadyState {
    point: Box<str>,
    target: Box<str>,
    base: Instant,
    shards: Box<[Shard]>,
}

#[repr(align(128))]
struct Shard {
    slots: [Slot; SLOTS],
}

struct Slot {
    /// The second (since `base`) this slot counts, plus one; 0 = never used.
    epoch: AtomicU64,
    // The organic responses are the histogram's sum: one atomic less per record.
    organic_errors: AtomicU64,
    injected: AtomicU64,
    injected_errors: AtomicU64,
    /// Organic latencies.
    hist: [AtomicU64; BUCKETS],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            epoch: AtomicU64::new(0),
            organic_errors: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            hist: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn reset(&self) {
        for c in [&self.organic_errors, &self.injected, &self.injected_errors] {
            c.store(0, Ordering::Relaxed);
        }
        for b in &self.hist {
            b.store(0, Ordering::Relaxed);
        }
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
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
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
        SteadyState {
            point: point.into(),
            target: target.into(),
            base: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    slots: std::array::from_fn(|_| Slot::new()),
                })
                .collect(),
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
        let sec = now.duration_since(self.base).as_secs();
        let slot = &self.shards[shard_index()].slots[(sec % SLOTS as u64) as usize];
        let epoch = sec + 1;
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen != epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // A new second: whoever moves the slot forward clears it. A count racing the
            // clear may be lost; the figures are a steady-state estimate, not a ledger.
            slot.reset();
        }
        if injected {
            slot.injected.fetch_add(1, Ordering::Relaxed);
            if error {
                slot.injected_errors.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            if error {
                slot.organic_errors.fetch_add(1, Ordering::Relaxed);
            }
            slot.hist[bucket(now.saturating_duration_since(start))].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The responses of the last `window` (whole seconds, at most 64 s).
    pub fn snapshot(&self, window: Duration) -> Observed {
        let now = Instant::now().duration_since(self.base).as_secs() + 1;
        let span = window.as_secs().clamp(1, SLOTS as u64);
        let mut out = Observed::default();
        let mut hist = [0u64; BUCKETS];
        for shard in self.shards.iter() {
            for slot in &shard.slots {
                let e = slot.epoch.load(Ordering::Acquire);
                if e == 0 || e + span <= now || e > now {
                    continue;
                }
                out.errors += slot.organic_errors.load(Ordering::Relaxed);
                out.injected += slot.injected.load(Ordering::Relaxed);
                out.injected_errors += slot.injected_errors.load(Ordering::Relaxed);
                for (h, b) in hist.iter_mut().zip(&slot.hist) {
                    *h += b.load(Ordering::Relaxed);
                }
            }
        }
        out.requests = hist.iter().sum();
        out.p99 = quantile(&hist, 0.99);
        out
    }
}

impl SteadyState {
    /// Adds the organic responses of the last `window` to `sum` (for the service guard).
    pub(crate) fn add_organic(&self, window: Duration, sum: &mut Sum) {
        let now = Instant::now().duration_since(self.base).as_secs() + 1;
        let span = window.as_secs().clamp(1, SLOTS as u64);
        for shard in self.shards.iter() {
            for slot in &shard.slots {
                let e = slot.epoch.load(Ordering::Acquire);
                if e == 0 || e + span <= now || e > now {
                    continue;
                }
                sum.errors += slot.organic_errors.load(Ordering::Relaxed);
                for (h, b) in sum.hist.iter_mut().zip(&slot.hist) {
                    let n = b.load(Ordering::Relaxed);
                    *h += n;
                    sum.requests += n;
                }
            }
        }
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
