//! What a piece of traffic came to: requests, errors and latency, and the two ways they
//! are read. [`Tally`] is what the engine counts (a latency histogram two buckets per power
//! of two wide); [`Figures`] is what is reported, from a tally or from exact samples.

use std::time::Duration;

use serde::Serialize;

use crate::rules::Dur;

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

/// Latency buckets of the engine's own histograms: two per power of two, from 64 µs to
/// about a minute. Under the model checker, four (the protocols do not depend on how
/// many, and each is an atomic per slot for it to explore).
pub(crate) const BUCKETS: usize = if cfg!(chaos_loom) { 4 } else { 40 };

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

/// Errors over requests, `0.0` without requests: the one definition of an error rate.
pub fn error_rate(requests: u64, errors: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

/// Counted outcomes: requests, errors, and their latencies by bucket. What a window, a
/// cohort or the organic traffic adds up to; the guards judge it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) hist: [u64; BUCKETS],
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            requests: 0,
            errors: 0,
            hist: [0; BUCKETS],
        }
    }
}

impl Tally {
    /// Errors over requests, `0.0` without requests.
    pub(crate) fn error_rate(&self) -> f64 {
        error_rate(self.requests, self.errors)
    }

    /// The `q` quantile (the upper bound of its bucket), `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return None;
        }
        // The smallest count that reaches the quantile, at least one.
        let want = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut acc = 0;
        for (i, n) in self.hist.iter().enumerate() {
            acc += n;
            if acc >= want {
                return Some(bucket_upper(i));
            }
        }
        Some(bucket_upper(BUCKETS - 1))
    }

    /// The 99th percentile latency (the upper bound of its bucket, within 50%).
    pub(crate) fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// The requests that were timed: what the quantiles rest on.
    pub(crate) fn timed(&self) -> u64 {
        self.hist.iter().sum()
    }
}

/// What some requests came to: how many, how many failed, and their 99th percentile
/// latency. The engine's figures come from its histograms (a p99 is the upper bound of its
/// bucket); a client that timed each request gets exact ones with
/// [`from_samples`](Figures::from_samples), as `testing::Experiment` and `chaosctl` do.
///
/// ```
/// use std::time::Duration;
/// use chaos_core::outcome::Figures;
///
/// let samples = (1..=100).map(|ms| (Duration::from_millis(ms), ms % 10 != 0));
/// let f = Figures::from_samples(samples);
/// assert_eq!((f.requests, f.errors), (100, 10));
/// assert_eq!(f.error_rate(), 0.1);
/// assert_eq!(f.p99, Some(Duration::from_millis(99)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Figures {
    /// Requests.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Their 99th percentile latency, `None` without requests.
    #[serde(serialize_with = "as_dur", skip_serializing_if = "Option::is_none")]
    pub p99: Option<Duration>,
}

fn as_dur<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(Dur).serialize(s)
}

impl Figures {
    /// Figures of timed requests: each one's latency and whether it was good. The p99 is
    /// exact (the nearest rank).
    pub fn from_samples(samples: impl IntoIterator<Item = (Duration, bool)>) -> Figures {
        let mut lat = Vec::new();
        let mut errors = 0;
        for (latency, ok) in samples {
            lat.push(latency);
            errors += u64::from(!ok);
        }
        lat.sort_unstable();
        let n = lat.len();
        let p99 = (n > 0).then(|| lat[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1]);
        Figures {
            requests: n as u64,
            errors,
            p99,
        }
    }

    /// Errors over requests, `0.0` without requests.
    pub fn error_rate(&self) -> f64 {
        error_rate(self.requests, self.errors)
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
        let mut t = Tally::default();
        assert_eq!(t.p99(), None);
        t.hist[bucket(Duration::from_millis(1))] = 99;
        t.hist[bucket(Duration::from_secs(2))] = 1;
        let p50 = t.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(1) && p50 < Duration::from_millis(2));
        // 99 of 100 are fast: the p99 is still the fast bucket; the p100 is not.
        assert!(t.p99().unwrap() < Duration::from_millis(2));
        assert!(t.quantile(1.0).unwrap() >= Duration::from_secs(2));
    }

    #[test]
    fn exact_figures_take_the_nearest_rank() {
        assert_eq!(Figures::from_samples([]), Figures::default());
        assert_eq!(Figures::default().error_rate(), 0.0);
        let one = Figures::from_samples([(Duration::from_millis(7), false)]);
        assert_eq!(
            (one.requests, one.errors, one.p99),
            (1, 1, Some(Duration::from_millis(7)))
        );
        // 200 samples: the 198th smallest is the p99.
        let f = Figures::from_samples((1..=200).rev().map(|ms| (Duration::from_millis(ms), true)));
        assert_eq!(f.p99, Some(Duration::from_millis(198)));
        assert_eq!(
            serde_json::to_value(f).unwrap(),
            serde_json::json!({ "requests": 200, "errors": 0, "p99": "198ms" })
        );
    }
}
