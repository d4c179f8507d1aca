//! Engine events for subscribers: rule changes, injections, aborts, the kill switch.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;

/// Something that happened in the engine, for [`Chaos::subscribe`](crate::Chaos::subscribe).
///
/// ```
/// use chaos_core::{Chaos, Event};
/// use chaos_core::rules::{Abort, Fault, Rule};
///
/// let chaos = Chaos::new();
/// let mut events = chaos.subscribe();
/// chaos.add_rule(Rule::new("a", "server", Fault::Abort(Abort::http(503)))).unwrap();
/// chaos.kill();
/// assert!(matches!(events.try_recv(), Ok(Event::RulesChanged { rules: 1, .. })));
/// assert_eq!(events.try_recv().ok(), Some(Event::Killed));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The rules were replaced, added to or removed from.
    RulesChanged {
        /// The new version.
        version: u64,
        /// How many rules are loaded now.
        rules: usize,
    },
    /// A fault was injected (or, in shadow mode, would have been).
    Injected {
        /// The rule id, or `x-chaos` for a directive.
        rule: String,
        /// The fault, e.g. `delay 300ms`.
        fault: String,
        /// The point.
        point: String,
        /// The target.
        target: String,
        /// The scope (scenario tag) the injection was counted in.
        scope: Option<String>,
        /// `true` when the rule is in shadow mode and nothing was injected.
        shadow: bool,
    },
    /// A rule was aborted (by its guard, the service guard, or by hand).
    RuleAborted {
        /// The rule id.
        rule: String,
        /// Why.
        reason: String,
        /// The guard's breach: the condition, what was observed, the threshold.
        breach: Option<crate::outcome::Breach>,
    },
    /// A rule's error budget (`max_errors`) is spent: it injects nothing more.
    RuleRetired {
        /// The rule id.
        rule: String,
        /// Why.
        reason: String,
    },
    /// The kill switch was flipped on.
    Killed,
    /// The kill switch was flipped off.
    Resumed,
    /// A rules file could not be loaded; the last good rules stay in force.
    ReloadFailed {
        /// The error, with its position.
        error: String,
    },
}

/// The event channel: sending costs nothing until someone subscribes.
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
    has_subscribers: AtomicBool,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events {
            tx: broadcast::channel(1024).0,
            has_subscribers: AtomicBool::new(false),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.has_subscribers.store(true, Ordering::Relaxed);
        self.tx.subscribe()
    }

    /// Whether anyone may be listening (so events need not even be built otherwise).
    #[inline]
    pub(crate) fn wanted(&self) -> bool {
        self.has_subscribers.load(Ordering::Relaxed)
    }

    pub(crate) fn emit(&self, e: Event) {
        if self.wanted() {
            let _ = self.tx.send(e);
        }
    }
}
