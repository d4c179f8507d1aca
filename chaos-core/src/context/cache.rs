//! Contexts made before, found again by the bytes of the headers they were made from: a
//! request tagged the way many are (`x-chaos: scenario=…`, `x-test-traffic: 1`) costs a
//! hash and a comparison, not a parse and an allocation.
//!
//! Only what a request says cleanly about itself is kept: tags and the test-traffic
//! mark, parsed without a refused item. Directives are not (their trust depends on a
//! signature and the clock), nor anything refused (each refusal is counted and logged
//! every time). The cache belongs to the rules in force, so limits that change with a
//! reload never judge a header by the old ones, and a reload empties it.

use std::sync::OnceLock;

use super::ChaosContext;

/// Slots: distinct shapes of tagged traffic kept at once. Each is written once, by the
/// first shape that hashes to it; a later shape that hashes there too is parsed every
/// time (what an uncached request costs), until the next reload.
const SLOTS: usize = 64;
/// Longer `x-chaos` values are parsed every time.
pub(crate) const MAX_CACHED_BYTES: usize = 256;

/// The contexts of headers seen since the rules were loaded. A read is one acquire load
/// and a comparison: no lock, no reference count on the slot.
pub(crate) struct ContextCache {
    slots: Box<[OnceLock<Entry>]>,
}

struct Entry {
    x_chaos: Option<Box<[u8]>>,
    test_traffic: Option<Box<[u8]>>,
    ctx: Option<ChaosContext>,
}

impl Default for ContextCache {
    fn default() -> Self {
        ContextCache {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl ContextCache {
    #[inline]
    fn slot(&self, x: Option<&[u8]>, tt: Option<&[u8]>) -> &OnceLock<Entry> {
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
        let e = self.slot(x, tt).get()?;
        (e.x_chaos.as_deref() == x && e.test_traffic.as_deref() == tt).then(|| e.ctx.clone())
    }

    /// Keeps the context made from these values (which the caller judged cacheable), if
    /// their slot is free.
    pub(crate) fn put(&self, x: Option<&[u8]>, tt: Option<&[u8]>, ctx: Option<ChaosContext>) {
        let slot = self.slot(x, tt);
        if slot.get().is_none() {
            // Two first requests of a shape may race here: one of them fills the slot.
            let _ = slot.set(Entry {
                x_chaos: x.map(Box::from),
                test_traffic: tt.map(Box::from),
                ctx,
            });
        }
    }
}
