//! Loom models of chaos-core's hand-written concurrent protocols (`scripts/loom`: built
//! with `--cfg chaos_loom`, so [`crate::sync`] is loom's). Each model runs its protocol
//! on two or three spawned threads and loom explores their interleavings, within the
//! preemption bound `LOOM_MAX_PREEMPTIONS` sets. The model's own thread only sets up and
//! joins: loom did not interleave what it does after a spawn with the spawned threads
//! (a reader there never met a count half made).

use std::time::Duration;

use loom::thread;
use tokio::time::Instant;

use std::future::Future;

use crate::Chaos;
use crate::context::cache::{ContextCache, Key, Source};
use crate::decision::{Permit, RuleState};
use crate::kill::KillSwitch;
use crate::outcome::cohorts::{Cohort, Cohorts};
use crate::outcome::ring::{Outcomes, Ring};
use crate::outcome::{AbortInfo, ErrorBudget, RuleOutcomes, ServiceGuard, Tally};
use crate::rules::{DropKind, Fault, Format, Guard, Rate, Rule, RuleSet};
use crate::sync::Arc;
use crate::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

fn rule() -> Rule {
    Rule::new("r", "server", Fault::Drop(DropKind::Reset))
}

fn state(rule: &Rule) -> std::sync::Arc<RuleState> {
    let now = Instant::now();
    std::sync::Arc::new(RuleState::new(rule, now, now + Duration::from_secs(60)))
}

/// Permits: never more held than the rule's `max_active` or the engine's; every slot is
/// released once.
#[test]
fn permits_hold_their_limits_and_release_once() {
    permits([true, true]);
}

/// Permits: a rule request that got its own slot but not the engine's (a directive took
/// it) gives its own back.
#[test]
fn a_permit_that_misses_the_engines_slot_gives_the_rules_back() {
    permits([true, false]);
}

/// Two requests, each by a rule of `max_active: 1` (`true`) or by a directive, which
/// takes only the engine's slot, in an engine of `max_active: 1`.
fn permits(by_rule: [bool; 2]) {
    loom::model(move || {
        let st = state(&rule());
        let global = Arc::new(AtomicU32::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = by_rule
            .into_iter()
            .map(|by_rule| {
                let (st, global, held) = (st.clone(), global.clone(), held.clone());
                thread::spawn(move || {
                    let rule = by_rule.then_some((&st, Some(1)));
                    if let Some(p) = Permit::acquire(rule, &global, Some(1)) {
                        assert_eq!(held.fetch_add(1, SeqCst), 0, "two permits held at once");
                        held.fetch_sub(1, SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
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
                        assert!(
                            spent + in_flight <= 2,
                            "{spent} spent, {in_flight} in flight"
                        );
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
        assert_eq!(
            retired.load(SeqCst),
            usize::from(spent == 2),
            "retired once, if spent"
        );
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

/// A rule ramped through `rates`, a step a second, gated by a guard that judges from the
/// first request.
fn ramped(rates: &[f64]) -> Rule {
    let mut g = Guard::new(Duration::from_secs(10));
    g.min_requests = 0;
    let rates = rates.iter().map(|&r| Rate::new(r).unwrap()).collect();
    rule()
        .with_guard(g)
        .with_ramp(rates, Duration::from_secs(1))
}

/// A ramp gated by its guard moves one step per judged tick, however many requests find
/// the tick due at once.
#[test]
fn a_ramp_step_advances_once() {
    loom::model(|| {
        let r = ramped(&[0.1, 0.5, 1.0]);
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

/// A ramp's own step protocol, without the tick's gate: judges whose work overlaps (a
/// judge of one tick still at work when the next tick's begins) move the ramp on once per
/// step's time. One judge judges at 1.5 s and again at 2.7 s, the other at 1.5 s: the ramp
/// ends on its third step, never moved on twice at 1.5 s (a judge reading the new step
/// with the old step's start) and never moved back (a late judge storing a step it read
/// before the others moved on).
#[test]
fn overlapping_judges_advance_a_ramp_one_step_at_a_time() {
    loom::model(|| {
        let r = ramped(&[0.1, 0.2, 0.5, 1.0]);
        let base = Instant::now();
        let outcomes = Arc::new(RuleOutcomes::new(&r, base));
        let at = move |ms| base + Duration::from_millis(ms);
        let threads: Vec<_> = [&[1500, 2700][..], &[1500][..]]
            .into_iter()
            .map(|times| {
                let o = outcomes.clone();
                thread::spawn(move || {
                    for &ms in times {
                        assert!(o.judge(at(ms)).is_none());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let status = outcomes.ramp_status(at(2700)).unwrap();
        assert_eq!(status.step, 2, "one step at 1.5 s and one at 2.7 s");
    });
}

/// A slot of a window turning over to its next lap, with two threads counting into it
/// and one reading: the last lap's count never shows; a count racing the turn-over may be
/// lost (at most the other racer's: the thread that turns the slot over keeps its own);
/// a reader never sees more errors than requests.
#[test]
fn a_window_slot_turns_over_losing_at_most_a_racing_count() {
    loom::model(|| {
        let base = std::time::Instant::now();
        // Two one-second slots, one lane: 0 s and 2.5 s fall in the same slot.
        let ring: Arc<Ring<Outcomes, 2>> = Arc::new(Ring::new(base, Duration::from_secs(1), 1));
        ring.record(base, Duration::from_millis(1), true);
        let later = base + Duration::from_millis(2500);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                thread::spawn(move || ring.record(later, Duration::from_millis(1), true))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let seen = ring.tally(later, 1);
        assert!(
            (1..=2).contains(&seen.requests),
            "the last lap's count shows, or both racers' are lost: {seen:?}"
        );
        assert!(seen.errors <= seen.requests, "torn: {seen:?}");
    });
}

/// A window read while a count goes in never says more errors than requests.
#[test]
fn a_window_read_during_a_count_is_never_torn() {
    loom::model(|| {
        let base = std::time::Instant::now();
        let ring: Arc<Ring<Outcomes, 2>> = Arc::new(Ring::new(base, Duration::from_secs(1), 1));
        let writer = {
            let ring = ring.clone();
            thread::spawn(move || ring.record(base, Duration::from_millis(1), true))
        };
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let seen = ring.tally(base, 1);
                assert!(seen.errors <= seen.requests, "torn: {seen:?}");
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        let seen = ring.tally(base, 1);
        assert_eq!((seen.requests, seen.errors), (1, 1));
    });
}

/// An organic outcome counted without a clock reading waits in its shard until the
/// shard's next reading or a read of the figures puts it in a second. Whichever of the
/// two takes it (the shard's tick in one second, a read in the next), it is counted once
/// and with its error: never twice, never in none, and its error never in another second
/// than its request (where a slot without the request would hide it). Both seconds'
/// slots are claimed beforehand, so no turn-over races the hand-off.
#[test]
fn an_untimed_outcome_is_put_in_a_second_once() {
    loom::model(|| {
        use crate::outcome::steady::{SteadyState, shard_index};
        const TICKED: u64 = 5;
        const READ: u64 = 6;
        let s = Arc::new(SteadyState::new("server", "", Default::default()));
        let lane = shard_index();
        assert_eq!(s.counted_in(TICKED, lane), (0, 0, 0));
        assert_eq!(s.counted_in(READ, lane), (0, 0, 0));
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                s.count_untimed(true);
                // The shard's clock reading, as its tick makes it.
                s.settle_pending(lane, TICKED);
            })
        };
        let reader = {
            let s = s.clone();
            thread::spawn(move || s.settle_pending(lane, READ))
        };
        writer.join().unwrap();
        reader.join().unwrap();
        let (ticked, read) = (s.counted_in(TICKED, lane), s.counted_in(READ, lane));
        assert_eq!(
            (ticked.0 + read.0, ticked.1 + read.1, read.2),
            (1, 1, 0),
            "ticked {ticked:?}, read {read:?}"
        );
    });
}

/// A cohort's totals (what the snapshot's `total_requests` and the Prometheus counters
/// say) are exact under concurrent records.
#[test]
fn cohort_totals_are_exact() {
    loom::model(|| {
        let base = std::time::Instant::now();
        let cohorts = Arc::new(Cohorts::new(base, Duration::from_secs(1)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let c = cohorts.clone();
                thread::spawn(move || {
                    c.record(Cohort::Experiment, base, Duration::from_millis(3), true);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cohorts.totals(Cohort::Experiment), (2, 2));
        assert_eq!(cohorts.totals(Cohort::Control), (0, 0));
    });
}

/// The service guard: of the requests that finish in the same tick, one judges the
/// organic traffic.
#[test]
fn the_service_guard_judges_a_tick_once() {
    loom::model(|| {
        let g = Guard::new(Duration::from_secs(10));
        let sg = Arc::new(ServiceGuard::new());
        sg.reset(Some(&g));
        let judged = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (sg, g, judged) = (sg.clone(), g.clone(), judged.clone());
                thread::spawn(move || {
                    if sg.judge(&g, false, false, |_| Tally::default()).is_some() {
                        judged.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(judged.load(SeqCst), 1);
    });
}

/// The kill switch: a wait in flight when it turns on is released, however the flip and
/// the wait's start interleave (a wait that checks the switch before enabling its
/// wake-up would sleep through the flip: loom reports it as a deadlock).
#[test]
fn a_kill_releases_every_wait_in_flight() {
    loom::model(|| {
        let kill = KillSwitch::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let kill = kill.clone();
                thread::spawn(move || loom::future::block_on(kill.wait()))
            })
            .collect();
        let flipper = {
            let kill = kill.clone();
            thread::spawn(move || assert!(kill.set(true)))
        };
        flipper.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(kill.is_on());
    });
}

/// Resume does not release a wait begun after it: the wake-up of an earlier flip is not
/// kept for later waits.
#[test]
fn a_wait_begun_after_resume_is_not_released_by_the_earlier_kill() {
    loom::model(|| {
        let kill = KillSwitch::new();
        let resumed = Arc::new(AtomicUsize::new(0));
        let flipper = {
            let (kill, resumed) = (kill.clone(), resumed.clone());
            thread::spawn(move || {
                kill.set(true);
                kill.set(false);
                resumed.store(1, SeqCst);
            })
        };
        let later = {
            let (kill, resumed) = (kill.clone(), resumed.clone());
            thread::spawn(move || {
                while resumed.load(SeqCst) == 0 {
                    thread::yield_now();
                }
                let mut n = std::pin::pin!(kill.notified());
                n.as_mut().enable();
                assert!(!kill.is_on());
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                assert!(n.as_mut().poll(&mut cx).is_pending(), "released early");
            })
        };
        flipper.join().unwrap();
        later.join().unwrap();
    });
}

/// An `x-chaos` header carrying one scenario tag.
fn tagged(scenario: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    let v = format!("scenario={scenario}");
    h.insert("x-chaos", http::HeaderValue::try_from(v).unwrap());
    h
}

/// The cache key of [`tagged`]'s header.
fn key(value: &[u8]) -> Key<'_> {
    Key {
        source: Source::Headers,
        x_chaos: Some(value),
        test_traffic: None,
    }
}

/// The context cache: two first requests of different shapes that hash to one slot race
/// to fill it. One fills it, once; each request gets its own context, the first time and
/// after (the other's entry is never taken for its own); the slot is read whole.
#[test]
fn a_context_slot_is_filled_once_and_never_answers_for_another_shape() {
    // Two tags whose headers hash to the same slot.
    let value = |s: &str| format!("scenario={s}");
    let first = "t0".to_owned();
    let other = (1..)
        .map(|i| format!("t{i}"))
        .find(|s| {
            ContextCache::index(&key(value(s).as_bytes()))
                == ContextCache::index(&key(value(&first).as_bytes()))
        })
        .unwrap();
    loom::model(move || {
        let chaos = Chaos::new();
        let threads: Vec<_> = [(first.clone(), 2), (other.clone(), 1)]
            .into_iter()
            .map(|(tag, reads)| {
                let chaos = chaos.clone();
                thread::spawn(move || {
                    for _ in 0..reads {
                        let ctx = chaos.context_from_headers(&tagged(&tag)).unwrap();
                        assert_eq!(ctx.scenarios(), [tag.as_str()], "another shape's context");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let compiled = chaos.compiled();
        let kept: Vec<_> = [&first, &other]
            .into_iter()
            .filter_map(|tag| {
                let v = value(tag);
                let hit = compiled.contexts.get(&key(v.as_bytes()))?;
                assert_eq!(hit.unwrap().scenarios(), [tag.as_str()]);
                Some(tag)
            })
            .collect();
        assert_eq!(kept.len(), 1, "the slot is filled once: {kept:?}");
    });
}

/// The context cache belongs to the rules in force: a request judged while a reload
/// changes the limits is judged by one set's limits and kept in that set's cache, so
/// once the reload returns every request is judged by the new limits (a header the old
/// limits allowed and the new refuse is never served from a cache).
#[test]
fn a_reload_never_serves_a_context_judged_by_the_old_limits() {
    loom::model(|| {
        let chaos = Chaos::new();
        let long = tagged(&"x".repeat(60));
        let reader = {
            let (chaos, long) = (chaos.clone(), long.clone());
            thread::spawn(move || {
                // Old limits or new: either judgement is fine while they race.
                let _ = chaos.context_from_headers(&long);
            })
        };
        let reloader = {
            let chaos = chaos.clone();
            thread::spawn(move || {
                let set =
                    RuleSet::parse(Format::Yaml, "limits: { max_header_bytes: 32 }\nrules: []")
                        .unwrap();
                chaos.replace(set).unwrap();
            })
        };
        reader.join().unwrap();
        reloader.join().unwrap();
        assert!(
            chaos.context_from_headers(&long).is_none(),
            "judged by the new limits"
        );
    });
}

/// The kill switch stops an injection decided before it and acted on after it, whatever
/// its fault (not only the waits in flight): the action re-reads the switch.
#[test]
fn an_injection_decided_before_the_kill_does_nothing_after_it() {
    loom::model(|| {
        let chaos = Chaos::new();
        chaos
            .add_rule(Rule::new(
                "r",
                "p",
                Fault::Abort(crate::rules::Abort::http(503)),
            ))
            .unwrap();
        let step = Arc::new(AtomicUsize::new(0));
        let decider = {
            let (chaos, step) = (chaos.clone(), step.clone());
            thread::spawn(move || {
                let view = crate::RequestView::new(crate::Point::from_name("p"), "");
                let crate::Decision::Inject(i) = chaos.decide(&view) else {
                    panic!("the rule matches everything")
                };
                step.store(1, SeqCst);
                while step.load(SeqCst) != 2 {
                    thread::yield_now();
                }
                assert!(
                    matches!(i.action(), crate::Action::Proceed(_)),
                    "injected after the kill returned"
                );
            })
        };
        let killer = {
            let (chaos, step) = (chaos.clone(), step.clone());
            thread::spawn(move || {
                while step.load(SeqCst) != 1 {
                    thread::yield_now();
                }
                chaos.kill();
                step.store(2, SeqCst);
            })
        };
        decider.join().unwrap();
        killer.join().unwrap();
    });
}
