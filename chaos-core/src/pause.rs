//! A gate that holds matching work until a test releases it (feature `test-util`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// Holds work at a pause point until [`PauseGate::release`].
///
/// Made by [`Chaos::pause_point`](crate::Chaos::pause_point): the work that meets the
/// pause point's rule waits at the gate until it opens (or the kill switch, or
/// `limits.max_hang`), then goes on.
///
/// ```
/// use chaos_core::testing::PauseGate;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gate = PauseGate::new("hold");
/// assert!(!gate.is_released());
/// gate.release();
/// gate.wait_arrived(0).await; // returns at once: nobody needs to have arrived
/// assert!(gate.is_released());
/// # }
/// ```
#[derive(Clone)]
pub struct PauseGate {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    released: AtomicBool,
    release: Arc<Notify>,
    held: AtomicUsize,
    arrived: Notify,
}

impl PauseGate {
    /// A closed gate.
    pub fn new(name: impl Into<String>) -> PauseGate {
        PauseGate {
            inner: Arc::new(Inner {
                name: name.into(),
                released: AtomicBool::new(false),
                release: Arc::new(Notify::new()),
                held: AtomicUsize::new(0),
                arrived: Notify::new(),
            }),
        }
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Opens the gate: every held and future request goes on.
    pub fn release(&self) {
        self.inner.released.store(true, Ordering::SeqCst);
        self.inner.release.notify_waiters();
    }

    /// Whether the gate is open.
    pub fn is_released(&self) -> bool {
        self.inner.released.load(Ordering::SeqCst)
    }

    /// How many requests have arrived at the gate so far.
    pub fn arrived(&self) -> usize {
        self.inner.held.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived at the gate.
    pub async fn wait_arrived(&self, n: usize) {
        loop {
            let notified = self.inner.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.arrived() >= n {
                return;
            }
            notified.await;
        }
    }

    /// A wake-up for the gate's opening; enable it before checking
    /// [`is_released`](Self::is_released).
    pub(crate) fn opened(&self) -> OwnedNotified {
        self.inner.release.clone().notified_owned()
    }

    /// Counts one more request as arrived at the gate.
    pub(crate) fn arrive(&self) {
        self.inner.held.fetch_add(1, Ordering::SeqCst);
        self.inner.arrived.notify_waiters();
    }
}

impl PartialEq for PauseGate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for PauseGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PauseGate")
            .field("name", &self.inner.name)
            .field("released", &self.is_released())
            .field("arrived", &self.arrived())
            .finish()
    }
}
