//! The concurrency slots an injection holds, released when it ends.

use std::fmt;
use std::sync::Arc;

use crate::sync;
use crate::sync::atomic::{AtomicU32, Ordering};

use super::state::RuleState;

/// The slots one injection holds: its rule's (`max_active`) and the engine's (the
/// document's `max_active`). Taking them is all or nothing; dropping the permit gives back
/// what it holds, so every way out of a decision (a limit reached, a retired rule, an
/// injection that ended or was cancelled) releases by the same code.
pub(crate) struct Permit {
    rule: Option<Arc<RuleState>>,
    global: Option<sync::Arc<AtomicU32>>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("rule", &self.rule.is_some())
            .field("global", &self.global.is_some())
            .finish()
    }
}

/// Takes one slot of `counter` unless `max` are taken.
fn take(counter: &AtomicU32, max: Option<u32>) -> bool {
    match max {
        None => {
            counter.fetch_add(1, Ordering::AcqRel);
            true
        }
        Some(max) => counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok(),
    }
}

impl Permit {
    /// Takes a slot of the rule (if given, with its `max_active`), then one of the engine
    /// (with the global `max_active`); `None`, holding nothing, if either is full.
    pub(crate) fn acquire(
        rule: Option<(&Arc<RuleState>, Option<u32>)>,
        global: &sync::Arc<AtomicU32>,
        global_max: Option<u32>,
    ) -> Option<Permit> {
        let mut permit = Permit {
            rule: None,
            global: None,
        };
        if let Some((state, max)) = rule {
            if !take(&state.active, max) {
                return None;
            }
            permit.rule = Some(state.clone());
        }
        if !take(global, global_max) {
            // `permit` gives the rule's slot back as it drops.
            return None;
        }
        permit.global = Some(global.clone());
        Some(permit)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(st) = &self.rule {
            st.active.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(g) = &self.global {
            g.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn rule() -> Arc<RuleState> {
        let r = crate::rules::Rule::new(
            "r",
            "server",
            crate::rules::Fault::Drop(crate::rules::DropKind::Reset),
        );
        Arc::new(RuleState::new(&r, Instant::now(), Instant::now()))
    }

    #[test]
    fn slots_are_taken_up_to_the_limit_and_given_back_on_drop() {
        let (st, global) = (rule(), sync::Arc::new(AtomicU32::new(0)));
        let a = Permit::acquire(Some((&st, Some(2))), &global, None).unwrap();
        let b = Permit::acquire(Some((&st, Some(2))), &global, None).unwrap();
        assert!(Permit::acquire(Some((&st, Some(2))), &global, None).is_none());
        assert_eq!(st.active.load(Ordering::SeqCst), 2);
        assert_eq!(global.load(Ordering::SeqCst), 2);
        drop(a);
        assert_eq!(st.active.load(Ordering::SeqCst), 1);
        assert_eq!(global.load(Ordering::SeqCst), 1);
        let c = Permit::acquire(Some((&st, Some(2))), &global, None).unwrap();
        drop((b, c));
        assert_eq!(st.active.load(Ordering::SeqCst), 0);
        assert_eq!(global.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_full_engine_gives_the_rule_slot_back() {
        let (st, global) = (rule(), sync::Arc::new(AtomicU32::new(0)));
        let held = Permit::acquire(None, &global, Some(1)).unwrap();
        assert!(Permit::acquire(Some((&st, None)), &global, Some(1)).is_none());
        assert_eq!(st.active.load(Ordering::SeqCst), 0, "rule slot rolled back");
        assert_eq!(global.load(Ordering::SeqCst), 1);
        drop(held);
        assert_eq!(global.load(Ordering::SeqCst), 0);
        let p = Permit::acquire(Some((&st, None)), &global, Some(1)).unwrap();
        assert_eq!(st.active.load(Ordering::SeqCst), 1);
        drop(p);
        assert_eq!(st.active.load(Ordering::SeqCst), 0);
    }
}
