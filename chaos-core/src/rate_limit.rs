//! Rate-limited warnings, so a flood of bad headers or failed reloads cannot flood the logs.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Lets one message through per interval and counts the ones held back.
#[derive(Debug)]
pub(crate) struct RateLimited {
    interval_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub(crate) const fn new(interval: Duration) -> RateLimited {
        RateLimited {
            interval_ms: interval.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// A message that must be logged now: starts a new interval, and gives how many were
    /// held back since the last one let through.
    pub(crate) fn restart(&self) -> u64 {
        let now = START.elapsed().as_millis() as u64;
        self.next_ms
            .store(now + self.interval_ms, Ordering::Relaxed);
        self.suppressed.swap(0, Ordering::Relaxed)
    }

    /// `Some(n)` when a message may be logged now, `n` being how many were held back since.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = START.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}
