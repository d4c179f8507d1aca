//! The kill switch: one flag, and a wake-up for every wait that it must cut short.

use std::sync::Arc;

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Notify, OwnedNotified};

/// Whether the kill switch is on, and the waits to release when it flips on.
#[derive(Debug, Default)]
pub(crate) struct KillSwitch {
    on: AtomicBool,
    notify: Arc<Notify>,
}

impl KillSwitch {
    pub(crate) fn new() -> Arc<KillSwitch> {
        Arc::new(KillSwitch::default())
    }

    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// Sets the switch; `true` when it changed. Flipping it on wakes every wait.
    pub(crate) fn set(&self, on: bool) -> bool {
        let was = self.on.swap(on, Ordering::SeqCst);
        if on && !was {
            self.notify.notify_waiters();
        }
        was != on
    }

    /// A wake-up for the next flip. Enable it before checking [`is_on`](Self::is_on), so a
    /// flip between the two is not missed.
    pub(crate) fn notified(&self) -> OwnedNotified {
        self.notify.clone().notified_owned()
    }

    /// Resolves when the switch is on (at once if it already is).
    pub(crate) async fn wait(&self) {
        let n = self.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.is_on() {
            return;
        }
        n.await;
    }
}
