//! The atomics, `Arc`, `Mutex` and `Notify` of chaos-core's hand-written concurrent
//! protocols (permits, the error budget, guard ticks and aborts, ramp steps, the slot
//! rings, the service guard, the kill switch): std's and tokio's, or under
//! `--cfg chaos_loom` loom's, so `scripts/loom` can explore their interleavings. A normal
//! build uses std's and tokio's unchanged.

#[cfg(not(chaos_loom))]
pub(crate) use std::sync::{Arc, Mutex, atomic};

#[cfg(chaos_loom)]
pub(crate) use loom::sync::{Arc, Mutex, atomic};

#[cfg(not(chaos_loom))]
pub(crate) use tokio::sync::Notify;
#[cfg(not(chaos_loom))]
pub(crate) use tokio::sync::futures::OwnedNotified;

#[cfg(chaos_loom)]
pub(crate) use self::notify::{Notify, OwnedNotified};

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
