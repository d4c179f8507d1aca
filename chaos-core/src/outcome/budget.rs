//! A rule's error budget (`max_errors`): the user-visible errors its experiment may cause
//! before it retires, never overspent however many injections are in flight.

use crate::sync::atomic::{AtomicU64, Ordering};

/// The budget and what is spent and held of it, in one word, so a reservation and a
/// settlement never see each other half done: experiment errors counted against the
/// budget (high half), and injections whose outcome is still to come, each holding a unit
/// (low half).
#[derive(Debug)]
pub(crate) struct ErrorBudget {
    max: u64,
    word: AtomicU64,
}

/// The word's halves: spent, in flight.
fn halves(word: u64) -> (u64, u64) {
    (word >> 32, word & u64::from(u32::MAX))
}

impl ErrorBudget {
    pub(crate) fn new(max: u64) -> ErrorBudget {
        ErrorBudget {
            max,
            word: AtomicU64::new(0),
        }
    }

    /// Whether it is spent: the rule is retired.
    #[inline]
    pub(crate) fn spent(&self) -> bool {
        halves(self.word.load(Ordering::Acquire)).0 >= self.max
    }

    /// Takes one unit for an injection whose outcome is to come; `false` when what is
    /// spent and in flight already fills the budget.
    pub(crate) fn reserve(&self) -> bool {
        let max = self.max;
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (spent, in_flight) = halves(w);
                (spent + in_flight < max).then_some(w + 1)
            })
            .is_ok()
    }

    /// Gives back a unit taken by [`reserve`](Self::reserve); an `error` spends it.
    /// `true` when that spent the last of the budget.
    pub(crate) fn settle(&self, error: bool) -> bool {
        let spend = if error { 1 << 32 } else { 0 };
        let before = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (_, in_flight) = halves(w);
                (in_flight > 0).then(|| w - 1 + spend)
            })
            .unwrap_or_else(|w| w);
        error && halves(before).0 + 1 == self.max
    }

    /// The budget and what is spent of it.
    pub(crate) fn figures(&self) -> (u64, u64) {
        (self.max, halves(self.word.load(Ordering::Acquire)).0)
    }

    /// What is spent, and the units in flight.
    #[cfg(all(test, chaos_loom))]
    pub(crate) fn word(&self) -> (u64, u64) {
        halves(self.word.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_budget_is_never_overspent_by_racing_threads() {
        for _ in 0..50 {
            let b = Arc::new(ErrorBudget::new(5));
            let granted = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (b, granted) = (b.clone(), granted.clone());
                    std::thread::spawn(move || {
                        for _ in 0..200 {
                            if b.reserve() {
                                granted.fetch_add(1, Ordering::Relaxed);
                                // Every injection fails the user.
                                b.settle(true);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(granted.load(Ordering::Relaxed), 5);
            assert_eq!(b.figures(), (5, 5));
            assert!(b.spent());
            assert!(!b.reserve());
        }
    }

    #[test]
    fn a_unit_given_back_without_an_error_is_not_spent() {
        let b = ErrorBudget::new(1);
        assert!(b.reserve());
        assert!(!b.reserve(), "the one unit is held");
        assert!(!b.settle(false));
        assert!(!b.spent());
        assert!(b.reserve());
        assert!(b.settle(true), "that spent the last of it");
        assert!(b.spent());
        // Nothing held: a settlement changes nothing.
        assert!(!b.settle(true));
        assert_eq!(b.figures(), (1, 1));
    }
}
