//! A sliding window of counts taken without a lock: a ring of slots, each covering a fixed
//! width of time, reused a ring later. The steady state (one-second slots, in a lane per
//! shard so threads mostly write to different cache lines) and every rule's cohorts (a
//! twentieth of the guard's window) keep their windows in it.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::figures::{BUCKETS, Tally, bucket};

/// What one slot of a [`Ring`] counts.
pub(crate) trait Counts {
    /// Nothing counted.
    fn new() -> Self;
    /// Back to nothing, for the slot's next turn.
    fn clear(&self);
}

/// Outcomes: errors, every timed outcome's latency by bucket, and the outcomes counted
/// without a timing (an organic request outside the sample). The requests are the
/// buckets' sum and the untimed count, so a timed record is one atomic less.
pub(crate) struct Outcomes {
    errors: AtomicU32,
    untimed: AtomicU32,
    hist: [AtomicU32; BUCKETS],
}

impl Counts for Outcomes {
    fn new() -> Outcomes {
        Outcomes {
            errors: AtomicU32::new(0),
            untimed: AtomicU32::new(0),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn clear(&self) {
        // The requests first, then the errors, in the reverse of the order a count adds
        // them (error, then request): a count racing the clear may be lost whole, or lose
        // its error, never keep an error without its request. Swaps, not stores, so each
        // clear is ordered with every count in the slot (the model checker found a
        // window keeping its last lap's count with plain stores).
        for b in &self.hist {
            b.swap(0, Ordering::Relaxed);
        }
        self.untimed.swap(0, Ordering::Relaxed);
        self.errors.swap(0, Ordering::Relaxed);
    }
}

impl Outcomes {
    /// Counts one outcome, with its latency if it was timed.
    #[inline]
    pub(crate) fn add(&self, latency: Option<Duration>, error: bool) {
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        match latency {
            Some(l) => self.hist[bucket(l)].fetch_add(1, Ordering::Relaxed),
            None => self.untimed.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Counts `requests` untimed outcomes, `errors` of them errors.
    pub(crate) fn add_untimed(&self, requests: u32, errors: u32) {
        if errors > 0 {
            self.errors.fetch_add(errors, Ordering::Relaxed);
        }
        self.untimed.fetch_add(requests, Ordering::Relaxed);
    }

    /// Adds what this slot counted to `tally`. A count made while this reads may be
    /// seen by its error and not yet by its request: the errors are capped at the
    /// requests, so no figure ever says more errors than requests.
    pub(crate) fn add_to(&self, tally: &mut Tally) {
        let mut requests = 0;
        for (h, b) in tally.hist.iter_mut().zip(&self.hist) {
            let n = u64::from(b.load(Ordering::Relaxed));
            *h += n;
            requests += n;
        }
        requests += u64::from(self.untimed.load(Ordering::Relaxed));
        tally.requests += requests;
        tally.errors += u64::from(self.errors.load(Ordering::Relaxed)).min(requests);
    }
}

struct Slot<C> {
    /// The slot's number since the ring's base, plus one; 0 = never used.
    epoch: AtomicU64,
    counts: C,
}

/// A window of `C` over time: lanes of `LEN` slots, in one allocation.
pub(crate) struct Ring<C, const LEN: usize> {
    base: Instant,
    width_ns: u64,
    slots: Box<[Slot<C>]>,
}

impl<C: Counts, const LEN: usize> Ring<C, LEN> {
    /// `lanes` rings of `LEN` slots of `width` each (at least a millisecond), counted from
    /// `base`.
    pub(crate) fn new(base: Instant, width: Duration, lanes: usize) -> Ring<C, LEN> {
        let width_ns = width.as_nanos().clamp(1_000_000, u128::from(u64::MAX));
        Ring {
            base,
            width_ns: width_ns as u64,
            slots: (0..LEN * lanes)
                .map(|_| Slot {
                    epoch: AtomicU64::new(0),
                    counts: C::new(),
                })
                .collect(),
        }
    }

    /// The number of the slot `now` falls in, counted from the ring's base (plus one).
    #[inline]
    pub(crate) fn epoch(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.base);
        if self.width_ns == 1_000_000_000 {
            // Slots of a second (the steady state's, counted on every request): no
            // division.
            return d.as_secs() + 1;
        }
        // In u64: nanoseconds last 584 years, and a u128 division is a library call.
        let ns = d.as_secs().saturating_mul(1_000_000_000) + u64::from(d.subsec_nanos());
        ns / self.width_ns + 1
    }

    /// The slot of `lane` that counts `now`, cleared first if it last counted an older
    /// time; `None` when it already counts a later one (`now` is late by a whole ring).
    #[inline]
    pub(crate) fn slot(&self, now: Instant, lane: usize) -> Option<&C> {
        self.slot_in(self.epoch(now), lane)
    }

    /// [`slot`](Self::slot) by the slot's number ([`epoch`](Self::epoch)).
    #[inline]
    pub(crate) fn slot_in(&self, epoch: u64, lane: usize) -> Option<&C> {
        let slot = self.at(epoch, lane);
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen != epoch {
            if seen > epoch {
                return None;
            }
            if slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Whoever moves the slot on clears it. A count racing the clear may be
                // lost: windows are estimates; the exact totals are kept elsewhere. A
                // writer stalled for a whole lap between reading the clock and counting
                // can put its one count in a later lap (loom shows it; a re-check here
                // would not close it, as the slot can move on after any check).
                slot.counts.clear();
            }
        }
        Some(&slot.counts)
    }

    /// The slot of `lane` numbered `epoch`, if it still counts that time (read only).
    pub(crate) fn counted(&self, epoch: u64, lane: usize) -> Option<&C> {
        let slot = self.at(epoch, lane);
        (slot.epoch.load(Ordering::Acquire) == epoch).then_some(&slot.counts)
    }

    /// Where slot `epoch` of `lane` lives.
    #[inline]
    fn at(&self, epoch: u64, lane: usize) -> &Slot<C> {
        &self.slots[lane * LEN + (epoch % LEN as u64) as usize]
    }

    /// Every slot, in every lane, of the last `parts` (the one `now` falls in and those
    /// before it).
    pub(crate) fn window(&self, now: Instant, parts: u64, mut each: impl FnMut(&C)) {
        let cur = self.epoch(now);
        for slot in self.slots.iter() {
            let e = slot.epoch.load(Ordering::Acquire);
            if e == 0 || e > cur || e + parts <= cur {
                continue;
            }
            each(&slot.counts);
        }
    }
}

impl<const LEN: usize> Ring<Outcomes, LEN> {
    /// Counts one outcome at `now` (nothing when late by a whole ring).
    #[inline]
    pub(crate) fn record(&self, now: Instant, latency: Duration, error: bool) {
        if let Some(s) = self.slot(now, 0) {
            s.add(Some(latency), error);
        }
    }

    /// The outcomes of the last `parts` slots.
    pub(crate) fn tally(&self, now: Instant, parts: u64) -> Tally {
        let mut t = Tally::default();
        self.window(now, parts, |s| s.add_to(&mut t));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_what_is_older_than_it() {
        let base = Instant::now();
        let at = |ms| base + Duration::from_millis(ms);
        // Ten slots of a second, a window of five.
        let r: Ring<Outcomes, 10> = Ring::new(base, Duration::from_secs(1), 1);
        r.record(at(0), Duration::from_millis(5), true);
        r.record(at(2_500), Duration::from_millis(5), false);
        let t = r.tally(at(4_900), 5);
        assert_eq!((t.requests, t.errors), (2, 1));
        let t = r.tally(at(5_100), 5);
        assert_eq!((t.requests, t.errors), (1, 0), "the first second has left");
        assert_eq!(r.tally(at(20_000), 5).requests, 0);
        // A slot is reused a ring later, cleared first...
        r.record(at(10_100), Duration::from_millis(5), false);
        assert_eq!(r.tally(at(10_100), 5).requests, 1);
        // ... and a time late by a whole ring is not counted into the later slot.
        r.record(at(100), Duration::from_millis(5), true);
        let t = r.tally(at(10_100), 5);
        assert_eq!((t.requests, t.errors), (1, 0));
    }
}
