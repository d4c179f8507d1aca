//! Where random draws come from: fast per-thread, or seeded and deterministic.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) enum RngSource {
    /// A fast per-thread generator (wyrand, from `fastrand`).
    Thread,
    /// A deterministic stream: the same seed and the same order of decisions give the same
    /// draws.
    Seeded { seed: u64, counter: AtomicU64 },
}

impl RngSource {
    pub(crate) fn new(seed: Option<u64>) -> RngSource {
        match seed {
            Some(seed) => RngSource::Seeded {
                seed,
                counter: AtomicU64::new(0),
            },
            None => RngSource::Thread,
        }
    }

    #[inline]
    pub(crate) fn next(&self) -> u64 {
        match self {
            RngSource::Thread => fastrand::u64(..),
            RngSource::Seeded { seed, counter } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).u64(..)
            }
        }
    }
}
