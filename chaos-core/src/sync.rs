//! The atomics, `Arc` and `Mutex` of chaos-core's hand-written concurrent protocols
//! (permits, the error budget, guard ticks and aborts, ramp steps, the slot rings, the
//! service guard): std's, or under `--cfg chaos_loom` loom's, so `scripts/loom` can
//! explore their interleavings. A normal build uses std's unchanged.

#[cfg(not(chaos_loom))]
pub(crate) use std::sync::{Arc, Mutex, atomic};

#[cfg(chaos_loom)]
pub(crate) use loom::sync::{Arc, Mutex, atomic};
