//! Counts over a sliding window of time, taken without a lock: a ring of slots, each a
//! twentieth of the window wide, and a latency histogram per slot. A sum reads the slots
//! the window covers. Every rule's cohorts are kept in these.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The bounds, in seconds, of the exported latency histograms: OpenTelemetry's HTTP
/// duration advice, extended to 30 s for injected hangs and long delays. The `otel`
/// instruments and the Prometheus text of the admin API use the same, so one query serves
/// both.
pub(crate) const SECONDS: [f64; 17] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0,
    30.0,
];

/// The exported bucket of `latency`: the first bound it does not exceed, or the last
/// (`+Inf`) bucket.
#[inline]
pub(crate) fn seconds_bucket(latency: Duration) -> usize {
    let s = latency.as_secs_f64();
    SECONDS.partition_point(|b| *b < s)
}

/// Latency buckets: two per power of two, from 64 µs to about a minute.
pub(crate) const BUCKETS: usize = 40;
/// Slots per window.
const PARTS: u64 = 20;
/// Slots kept: a window's worth and the one being filled, with one to spare.
const RING: usize = PARTS as usize + 2;

/// The latency bucket of `latency`.
#[inline]
pub(crate) fn bucket(latency: Duration) -> usize {
    let us = latency
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(latency.subsec_micros()));
    if us < 64 {
        return 0;
    }
    let log2 = 63 - us.leading_zeros() as usize;
    let half = ((us >> (log2 - 1)) & 1) as usize;
    (1 + (log2 - 6) * 2 + half).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`.
pub(crate) fn bucket_upper(i: usize) -> Duration {
    if i == 0 {
        return Duration::from_micros(64);
    }
    let octave = (i - 1) / 2;
    let half = (i - 1) % 2;
    let low = 1u64 << (octave + 6);
    Duration::from_micros(low + low / 2 * (half as u64 + 1))
}

/// The `q` quantile of a histogram (the upper bound of its bucket), `None` when empty.
pub(crate) fn quantile(hist: &[u64; BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    // The smallest count that reaches the quantile, at least one.
    let want = ((total as f64 * q).ceil() as u64).clamp(1, total);
    let mut acc = 0;
    for (i, n) in hist.iter().enumerate() {
        acc += n;
        if acc >= want {
            return Some(bucket_upper(i));
        }
    }
    Some(bucket_upper(BUCKETS - 1))
}

/// Outcomes over a sliding window.
pub(crate) struct Window {
    base: Instant,
    width_ns: u64,
    slots: Box<[Slot]>,
}

struct Slot {
    /// The slot's number since `base`, plus one; 0 = never used.
    epoch: AtomicU64,
    requests: AtomicU32,
    errors: AtomicU32,
    hist: [AtomicU32; BUCKETS],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            epoch: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        for b in &self.hist {
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// What a window holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sum {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) hist: [u64; BUCKETS],
}

impl Default for Sum {
    fn default() -> Sum {
        Sum {
            requests: 0,
            errors: 0,
            hist: [0; BUCKETS],
        }
    }
}

impl Sum {
    /// Errors over requests, `0.0` without requests.
    pub(crate) fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

impl Window {
    /// A window `span` long, counted from `base`.
    pub(crate) fn new(base: Instant, span: Duration) -> Window {
        let width_ns = (span.as_nanos() / u128::from(PARTS)).clamp(1_000_000, u128::from(u64::MAX));
        Window {
            base,
            width_ns: width_ns as u64,
            slots: (0..RING).map(|_| Slot::new()).collect(),
        }
    }

    #[inline]
    fn epoch(&self, now: Instant) -> u64 {
        // In u64: nanoseconds last 584 years, and a u128 division is a library call.
        let d = now.saturating_duration_since(self.base);
        let ns = d.as_secs().saturating_mul(1_000_000_000) + u64::from(d.subsec_nanos());
        ns / self.width_ns + 1
    }

    /// Counts one outcome at `now`.
    #[inline]
    pub(crate) fn record(&self, now: Instant, latency: Duration, error: bool) {
        let epoch = self.epoch(now);
        let slot = &self.slots[(epoch % RING as u64) as usize];
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen != epoch {
            if seen > epoch {
                // Late by a whole ring: the slot already counts a later time.
                return;
            }
            if slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Whoever moves the slot on clears it. A count racing the clear may be
                // lost: windows are estimates; the cohorts' totals are exact.
                slot.reset();
            }
        }
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        slot.hist[bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// The outcomes of the window that ends at `now`.
    pub(crate) fn sum(&self, now: Instant) -> Sum {
        let cur = self.epoch(now);
        let mut out = Sum::default();
        for slot in self.slots.iter() {
            let e = slot.epoch.load(Ordering::Acquire);
            if e == 0 || e > cur || e + PARTS <= cur {
                continue;
            }
            out.requests += u64::from(slot.requests.load(Ordering::Relaxed));
            out.errors += u64::from(slot.errors.load(Ordering::Relaxed));
            for (h, b) in out.hist.iter_mut().zip(&slot.hist) {
                *h += u64::from(b.load(Ordering::Relaxed));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        for us in [
            0u64, 63, 64, 95, 96, 127, 128, 1_000, 250_000, 2_000_000, 60_000_000,
        ] {
            let d = Duration::from_micros(us);
            let b = bucket(d);
            // The last bucket holds everything above it.
            assert!(
                b == BUCKETS - 1 || d <= bucket_upper(b),
                "{us} µs in bucket {b}"
            );
            if b > 0 && b < BUCKETS - 1 {
                assert!(d >= bucket_upper(b - 1), "{us} µs above bucket {}", b - 1);
            }
        }
        for i in 1..BUCKETS {
            assert!(bucket_upper(i) > bucket_upper(i - 1));
        }
    }

    #[test]
    fn quantiles_take_the_bucket_that_reaches_them() {
        let mut h = [0u64; BUCKETS];
        assert_eq!(quantile(&h, 0.99), None);
        h[bucket(Duration::from_millis(1))] = 99;
        h[bucket(Duration::from_secs(2))] = 1;
        let p50 = quantile(&h, 0.5).unwrap();
        assert!(p50 >= Duration::from_millis(1) && p50 < Duration::from_millis(2));
        // 99 of 100 are fast: the p99 is still the fast bucket; the p100 is not.
        assert!(quantile(&h, 0.99).unwrap() < Duration::from_millis(2));
        assert!(quantile(&h, 1.0).unwrap() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_forgets_what_is_older_than_it() {
        let w = Window::new(Instant::now(), Duration::from_secs(10));
        w.record(Instant::now(), Duration::from_millis(5), true);
        tokio::time::advance(Duration::from_secs(5)).await;
        w.record(Instant::now(), Duration::from_millis(5), false);
        let s = w.sum(Instant::now());
        assert_eq!((s.requests, s.errors), (2, 1));
        tokio::time::advance(Duration::from_millis(5_600)).await;
        let s = w.sum(Instant::now());
        assert_eq!((s.requests, s.errors), (1, 0), "the first second has left");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(w.sum(Instant::now()).requests, 0);
        // A slot is reused a ring later, cleared first.
        w.record(Instant::now(), Duration::from_millis(5), false);
        assert_eq!(w.sum(Instant::now()).requests, 1);
    }
}
