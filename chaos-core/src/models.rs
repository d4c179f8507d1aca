//! Loom models of chaos-core's hand-written concurrent protocols (`scripts/loom`: built
//! with `--cfg chaos_loom`, so [`crate::sync`] is loom's). Each model runs its protocol
//! on two or three threads and loom explores their interleavings, within the preemption
//! bound `LOOM_MAX_PREEMPTIONS` sets.

use std::time::Duration;

use loom::thread;
use tokio::time::Instant;

use crate::decision::{Permit, RuleState};
use crate::outcome::{AbortInfo, ErrorBudget, RuleOutcomes};
use crate::rules::{DropKind, Fault, Guard, Rate, Rule};
use crate::sync::Arc;
use crate::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

fn rule() -> Rule {
    Rule::new("r", "server", Fault::Drop(DropKind::Reset))
}

fn state(rule: &Rule) -> std::sync::Arc<RuleState> {
    let now = Instant::now();
    std::sync::Arc::new(RuleState::new(rule, now, now + Duration::from_secs(60)))
}

/// Permits: never more held than the rule's `max_active` or the engine's; a failed
/// acquire of the engine's slot gives the rule's back; every slot is released once.
#[test]
fn permits_hold_their_limits_and_release_once() {
    loom::model(|| {
        let st = state(&rule());
        let global = Arc::new(AtomicU32::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (st, global, held) = (st.clone(), global.clone(), held.clone());
                thread::spawn(move || {
                    // A rule of `max_active: 1` in an engine of `max_active: 1`.
                    if let Some(p) = Permit::acquire(Some((&st, Some(1))), &global, Some(1)) {
                        assert_eq!(held.fetch_add(1, SeqCst), 0, "two permits held at once");
                        assert!(st.active.load(SeqCst) <= 1 && global.load(SeqCst) <= 1);
                        held.fetch_sub(1, SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
        // A directive takes only the engine's slot; when it gets it, a rule that got its
        // own slot must give that one back.
        if let Some(p) = Permit::acquire(None, &global, Some(1)) {
            assert!(global.load(SeqCst) <= 1);
            drop(p);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(st.active.load(SeqCst), 0, "every rule slot released once");
        assert_eq!(global.load(SeqCst), 0, "every engine slot released once");
    });
}

/// The error budget (`max_errors`): never more units granted than the budget while
/// injections settle concurrently; spent and in flight together never above it; the
/// settlement that spends the last unit is one.
#[test]
fn the_error_budget_is_never_overspent_and_retires_once() {
    loom::model(|| {
        let budget = Arc::new(ErrorBudget::new(2));
        let retired = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [true, true, false]
            .into_iter()
            .map(|error| {
                let (budget, retired) = (budget.clone(), retired.clone());
                thread::spawn(move || {
                    if budget.reserve() {
                        let (spent, in_flight) = budget.word();
                        assert!(spent + in_flight <= 2, "{spent} spent, {in_flight} in flight");
                        if budget.settle(error) {
                            retired.fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (spent, in_flight) = budget.word();
        assert!(spent <= 2 && in_flight == 0);
        assert_eq!(retired.load(SeqCst), usize::from(spent == 2), "retired once, if spent");
    });
}

/// The budget of one unit, as tight as it gets: exactly one injection, ever.
#[test]
fn a_budget_of_one_grants_one() {
    loom::model(|| {
        let budget = Arc::new(ErrorBudget::new(1));
        let granted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (budget, granted) = (budget.clone(), granted.clone());
                thread::spawn(move || {
                    if budget.reserve() {
                        granted.fetch_add(1, SeqCst);
                        budget.settle(true);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(granted.load(SeqCst), 1);
        assert!(budget.spent());
    });
}

/// Guards: of the threads that find the same tick due, one judges; a rule aborted by
/// several at once is aborted once (one record, so one event and one count).
#[test]
fn a_tick_is_judged_once_and_a_rule_aborts_once() {
    loom::model(|| {
        let mut g = Guard::new(Duration::from_secs(10));
        g.min_requests = 0;
        let st = state(&rule().with_guard(g));
        let now = Instant::now() + Duration::from_millis(1500);
        let (judged, aborted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (st, judged, aborted) = (st.clone(), judged.clone(), aborted.clone());
                thread::spawn(move || {
                    if st.outcomes.judgement_due(now) {
                        judged.fetch_add(1, SeqCst);
                    }
                    if st.abort(AbortInfo::new(format!("by {i}"), None)) {
                        aborted.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(judged.load(SeqCst), 1, "one judge per tick");
        assert_eq!(aborted.load(SeqCst), 1, "one abort");
        assert!(st.is_aborted() && st.abort_info().is_some());
    });
}

/// A ramp gated by its guard moves one step per judged tick, however many requests find
/// the tick due at once.
#[test]
fn a_ramp_step_advances_once() {
    loom::model(|| {
        let mut g = Guard::new(Duration::from_secs(10));
        g.min_requests = 0;
        let r = rule().with_guard(g).with_ramp(
            vec![
                Rate::new(0.1).unwrap(),
                Rate::new(0.5).unwrap(),
                Rate::new(1.0).unwrap(),
            ],
            Duration::from_secs(1),
        );
        let base = Instant::now();
        let outcomes = Arc::new(RuleOutcomes::new(&r, base));
        // Both at a tick after the first step's time is up.
        let now = base + Duration::from_millis(1500);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let o = outcomes.clone();
                thread::spawn(move || {
                    if o.judgement_due(now) {
                        assert!(o.judge(now).is_none());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let status = outcomes.ramp_status(now).unwrap();
        assert_eq!(status.step, 1, "one step, not two");
    });
}
