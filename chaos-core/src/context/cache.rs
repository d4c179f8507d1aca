//! Contexts made before, found again by the bytes of the headers they were made from: a
//! request tagged the way many are (`x-chaos: scenario=…`, `x-test-traffic: 1`) costs a
//! hash and a comparison, not a parse and an allocation.
//!
//! Only what a request says cleanly about itself is kept: tags and the test-traffic
//! mark, parsed without a refused item. Directives are not (their trust depends on a
//! signature and the clock), nor anything refused (each refusal is counted and logged
//! every time). The cache belongs to the rules in force, so limits that change with a
//! reload never judge a header by the old ones.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::ChaosContext;

/// Slots: distinct shapes of tagged traffic kept at once. More evict each other (by hash),
/// which costs what an uncached request does.
const SLOTS: usize = 64;
/// Longer `x-chaos` values are parsed every time.
pub(crate) const MAX_CACHED_BYTES: usize = 256;

/// The contexts of headers seen lately. Reads are lock-free (an `arc-swap` load); a miss
/// that can be kept replaces its slot.
pub(crate) struct ContextCache {
    slots: Box<[ArcSwapOption<Entry>]>,
}

struct Entry {
    x_chaos: Option<Box<[u8]>>,
    test_traffic: Option<Box<[u8]>>,
    ctx: Option<ChaosContext>,
}

impl Default for ContextCache {
    fn default() -> Self {
        ContextCache {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }
}

impl ContextCache {
    #[inline]
    fn slot(&self, x: Option<&[u8]>, tt: Option<&[u8]>) -> &ArcSwapOption<Entry> {
        let mut h = x.map_or(0, xxhash_rust::xxh3::xxh3_64);
        if let Some(t) = tt {
            h ^= xxhash_rust::xxh3::xxh3_64(t).rotate_left(17) | 1;
        }
        &self.slots[(h % SLOTS as u64) as usize]
    }

    /// The context made before from exactly these header values: `Some(ctx)` (`ctx` itself
    /// `None` when they said nothing usable), or `None` when not kept.
    #[inline]
    pub(crate) fn get(&self, x: Option<&[u8]>, tt: Option<&[u8]>) -> Option<Option<ChaosContext>> {
        let guard = self.slot(x, tt).load();
        let e = guard.as_deref()?;
        (e.x_chaos.as_deref() == x && e.test_traffic.as_deref() == tt).then(|| e.ctx.clone())
    }

    /// Keeps the context made from these values (which the caller judged cacheable).
    pub(crate) fn put(&self, x: Option<&[u8]>, tt: Option<&[u8]>, ctx: Option<ChaosContext>) {
        self.slot(x, tt).store(Some(Arc::new(Entry {
            x_chaos: x.map(Box::from),
            test_traffic: tt.map(Box::from),
            ctx,
        })));
    }
}
