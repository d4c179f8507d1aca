//! Contexts made before, found again by the bytes of the headers they were made from: a
//! request tagged the way many are (`x-chaos: scenario=…`, `x-test-traffic: 1`, or the
//! same as W3C `baggage` members) costs a hash and a comparison, not a parse and an
//! allocation.
//!
//! Only what a request says cleanly about itself is kept: tags and the test-traffic
//! mark, parsed without a refused item. Directives are not (their trust depends on a
//! signature and the clock), nor anything refused (each refusal is counted and logged
//! every time). The cache belongs to the rules in force, so limits that change with a
//! reload never judge a header by the old ones, and a reload empties it.

use super::ChaosContext;
use crate::sync::OnceLock;

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
    source: Source,
    x_chaos: Option<Box<[u8]>>,
    test_traffic: Option<Box<[u8]>>,
    ctx: Option<ChaosContext>,
}

/// Where a context's bytes were read: the same bytes mean different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `x-chaos` and `x-test-traffic` header values.
    Headers,
    /// The `chaos` and `test-traffic` members of `baggage`, still percent-encoded.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    Baggage,
}

/// What a context is kept under: its source and its two values' bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    pub(crate) source: Source,
    pub(crate) x_chaos: Option<&'a [u8]>,
    pub(crate) test_traffic: Option<&'a [u8]>,
}

impl Key<'_> {
    /// Whether a context made from these bytes may be kept (its `x-chaos` value is short
    /// enough).
    #[inline]
    fn fits(&self) -> bool {
        self.x_chaos.is_none_or(|b| b.len() <= MAX_CACHED_BYTES)
    }
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
    fn slot(&self, key: &Key<'_>) -> &OnceLock<Entry> {
        &self.slots[Self::index(key)]
    }

    /// The slot `key` is kept in.
    #[inline]
    pub(crate) fn index(key: &Key<'_>) -> usize {
        let mut h = key.x_chaos.map_or(0, xxhash_rust::xxh3::xxh3_64);
        if let Some(t) = key.test_traffic {
            h ^= xxhash_rust::xxh3::xxh3_64(t).rotate_left(17) | 1;
        }
        if key.source == Source::Baggage {
            h = h.rotate_left(31) ^ 0x9e37_79b9_7f4a_7c15;
        }
        (h % SLOTS as u64) as usize
    }

    /// The context made before from exactly these bytes, read where `key` says: `Some(ctx)`
    /// (`ctx` itself `None` when they said nothing usable), or `None` when not kept.
    #[inline]
    pub(crate) fn get(&self, key: &Key<'_>) -> Option<Option<ChaosContext>> {
        let e = self.slot(key).get()?;
        (e.source == key.source
            && e.x_chaos.as_deref() == key.x_chaos
            && e.test_traffic.as_deref() == key.test_traffic)
            .then(|| e.ctx.clone())
    }

    /// The context kept under `key`, else the one `make` makes (given `key` to keep it
    /// under, when the bytes are short enough to be kept).
    #[inline]
    pub(crate) fn get_or_make<'k>(
        &self,
        key: Key<'k>,
        make: impl FnOnce(Option<Key<'k>>) -> Option<ChaosContext>,
    ) -> Option<ChaosContext> {
        let fits = key.fits();
        if fits && let Some(hit) = self.get(&key) {
            return hit;
        }
        make(fits.then_some(key))
    }

    /// Keeps the context made from `key`'s bytes (which the caller judged cacheable), if
    /// their slot is free.
    pub(crate) fn put(&self, key: &Key<'_>, ctx: Option<ChaosContext>) {
        let slot = self.slot(key);
        if slot.get().is_none() {
            // Two first requests of a shape may race here: one of them fills the slot.
            let _ = slot.set(Entry {
                source: key.source,
                x_chaos: key.x_chaos.map(Box::from),
                test_traffic: key.test_traffic.map(Box::from),
                ctx,
            });
        }
    }
}
