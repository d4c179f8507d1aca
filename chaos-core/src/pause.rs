//! A gate that holds matching work until a test releases it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Holds work at a pause point until [`PauseGate::release`].
///
/// Made by the `testing` helpers (feature `test-util`); a rule with this fault can only be
/// built in code, never read from a file.
///
/// ```
/// use chaos_core::PauseGate;
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
    release: Notify,
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
                release: Notify::new(),
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

    /// Waits until the gate opens (counts this caller as arrived).
    pub(crate) async fn hold(&self) {
        let notified = self.inner.release.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.inner.held.fetch_add(1, Ordering::SeqCst);
        self.inner.arrived.notify_waiters();
        if self.is_released() {
            return;
        }
        notified.await;
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
