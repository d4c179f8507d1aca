//! The atomics, `Arc`, `Mutex`, `Notify`, `OnceLock` and `ArcSwap` of chaos-core's
//! hand-written concurrent protocols (permits, the error budget, guard ticks and aborts,
//! ramp steps, the slot rings, the service guard, the kill switch, the context cache and
//! the rules in force): std's, tokio's and arc-swap's, or under `--cfg chaos_loom` loom's
//! (or stand-ins built on loom's), so `scripts/loom` can explore their interleavings. A
//! normal build uses std's, tokio's and arc-swap's unchanged.

#[cfg(not(chaos_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic};

#[cfg(chaos_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic};

#[cfg(not(chaos_loom))]
pub(crate) use tokio::sync::Notify;
#[cfg(not(chaos_loom))]
pub(crate) use tokio::sync::futures::OwnedNotified;

#[cfg(chaos_loom)]
pub(crate) use self::notify::{Notify, OwnedNotified};

#[cfg(not(chaos_loom))]
pub(crate) use arc_swap::{ArcSwap, Guard as Loaded};
#[cfg(not(chaos_loom))]
pub(crate) use std::sync::OnceLock;

#[cfg(chaos_loom)]
pub(crate) use self::publish::{ArcSwap, Loaded, OnceLock};

/// Under the model checker, stand-ins for arc-swap's `ArcSwap` and std's `OnceLock` with
/// the part of their contracts the engine relies on, at points loom can interleave: a
/// load sees one whole value, stored before or after a racing store; a once-cell is set
/// by one writer, and read as empty or whole, never in between.
#[cfg(chaos_loom)]
mod publish {
    use std::ops::Deref;

    use super::Mutex;
    use super::atomic::{AtomicU8, Ordering};

    #[derive(Debug)]
    pub(crate) struct ArcSwap<T> {
        current: Mutex<std::sync::Arc<T>>,
    }

    /// What a load hands back: the value as it was at the load.
    #[derive(Debug)]
    pub(crate) struct Loaded<T>(T);

    impl<T> Deref for Loaded<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> ArcSwap<T> {
        pub(crate) fn from_pointee(value: T) -> ArcSwap<T> {
            ArcSwap {
                current: Mutex::new(std::sync::Arc::new(value)),
            }
        }

        pub(crate) fn load(&self) -> Loaded<std::sync::Arc<T>> {
            Loaded(self.load_full())
        }

        pub(crate) fn load_full(&self) -> std::sync::Arc<T> {
            self.current.lock().unwrap().clone()
        }

        pub(crate) fn store(&self, value: std::sync::Arc<T>) {
            *self.current.lock().unwrap() = value;
        }
    }

    const EMPTY: u8 = 0;
    const WRITING: u8 = 1;
    const SET: u8 = 2;

    /// Set once; std's `OnceLock` holds the value, loom's atomic says when it is whole.
    #[derive(Debug)]
    pub(crate) struct OnceLock<T> {
        state: AtomicU8,
        value: std::sync::OnceLock<T>,
    }

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> OnceLock<T> {
            OnceLock {
                state: AtomicU8::new(EMPTY),
                value: std::sync::OnceLock::new(),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            (self.state.load(Ordering::Acquire) == SET)
                .then(|| self.value.get().expect("whole once SET"))
        }

        pub(crate) fn set(&self, value: T) -> Result<(), T> {
            if self
                .state
                .compare_exchange(EMPTY, WRITING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(value);
            }
            let set = self.value.set(value);
            self.state.store(SET, Ordering::Release);
            set
        }
    }
}

/// Under the model checker, a stand-in for tokio's `Notify` (which loom cannot run) with
/// the part of its contract the kill switch relies on: `notify_waiters` wakes every
/// `OwnedNotified` enabled (or polled) before the call, and no other.
#[cfg(chaos_loom)]
mod notify {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::Mutex;

    #[derive(Debug)]
    pub(crate) struct Notify {
        /// Calls of `notify_waiters` so far, and the wakers waiting for the next.
        state: Mutex<(u64, Vec<Waker>)>,
    }

    impl Default for Notify {
        fn default() -> Notify {
            Notify {
                state: Mutex::new((0, Vec::new())),
            }
        }
    }

    impl Notify {
        pub(crate) fn notify_waiters(&self) {
            let mut s = self.state.lock().unwrap();
            s.0 += 1;
            for w in s.1.drain(..) {
                w.wake();
            }
        }

        pub(crate) fn notified_owned(self: std::sync::Arc<Self>) -> OwnedNotified {
            OwnedNotified {
                notify: self,
                enabled_at: None,
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct OwnedNotified {
        notify: std::sync::Arc<Notify>,
        /// The count of `notify_waiters` calls when it was enabled.
        enabled_at: Option<u64>,
    }

    impl OwnedNotified {
        pub(crate) fn enable(mut self: Pin<&mut Self>) -> bool {
            if self.enabled_at.is_none() {
                let at = self.notify.state.lock().unwrap().0;
                self.enabled_at = Some(at);
            }
            false
        }
    }

    impl Future for OwnedNotified {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let notify = self.notify.clone();
            let mut s = notify.state.lock().unwrap();
            let at = *self.enabled_at.get_or_insert(s.0);
            if s.0 > at {
                return Poll::Ready(());
            }
            s.1.push(cx.waker().clone());
            Poll::Pending
        }
    }
}
