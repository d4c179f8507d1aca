//! Cohorts, guards, error budgets and ramps, through the generic injection point
//! (`Chaos::inject_fallible`): a worker with no server layer, whose outcome is the
//! injected operation's result at its point. Time is paused where the guard's window is
//! on tokio's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, Event, GuardState, RuleStatus};

fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::builder().seed(7).build().unwrap();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

/// One call to the worker's dependency: `fails` says whether the work itself fails.
async fn call(chaos: &Chaos, fails: bool) -> bool {
    let out = chaos
        .inject_fallible("queue.publish", "orders", async move {
            if fails { Err("organic") } else { Ok(()) }
        })
        .await;
    matches!(out, Ok(Ok(())))
}

#[tokio::test(start_paused = true)]
async fn cohort_counts_are_exact() {
    let chaos = engine(
        "rules:\n  - { id: r, point: queue.publish, fault: { error: unavailable }, rate: 10% }\n",
    );
    for _ in 0..10_000 {
        call(&chaos, false).await;
    }
    let snap = chaos.snapshot();
    let r = &snap.rules[0];
    let (exp, ctl) = (&r.cohorts.experiment, &r.cohorts.control);
    assert_eq!(r.counters.matched, 10_000);
    assert_eq!(exp.total_requests + ctl.total_requests, r.counters.matched);
    assert_eq!(exp.total_requests, r.counters.injected);
    // Every injected call failed; no control call did.
    assert_eq!(exp.total_errors, exp.total_requests);
    assert_eq!(ctl.total_errors, 0);
    assert!(
        (800..1200).contains(&exp.total_requests),
        "about 10%: {}",
        exp.total_requests
    );
    assert_eq!(r.guard, GuardState::None);
    assert_eq!(r.cohorts.window.0, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_shadow_rule_has_a_would_be_experiment_and_a_control() {
    let chaos = engine(
        "rules:\n  - { id: s, point: queue.publish, fault: { error: unavailable }, rate: 50%, mode: shadow }\n",
    );
    for _ in 0..1_000 {
        assert!(call(&chaos, false).await, "shadow injects nothing");
    }
    let r = &chaos.snapshot().rules[0];
    let (exp, ctl) = (&r.cohorts.experiment, &r.cohorts.control);
    assert_eq!(r.counters.injected, 0);
    assert_eq!(exp.total_requests, r.counters.shadowed);
    assert_eq!(exp.total_requests + ctl.total_requests, 1_000);
    assert!((400..600).contains(&exp.total_requests), "{exp:?}");
    assert_eq!(exp.total_errors + ctl.total_errors, 0);
}

#[tokio::test(start_paused = true)]
async fn a_breaching_rule_is_aborted_within_a_tick_with_what_it_saw() {
    let chaos = engine(
        "rules:\n  - id: r\n    point: queue.publish\n    fault: { error: unavailable }\n    rate: 50%\n    guard: { error_rate_above: 5%, min_requests: 20, window: 10s }\n",
    );
    let mut events = chaos.subscribe();
    // Too few requests: no judgement, however bad.
    for _ in 0..20 {
        call(&chaos, false).await;
    }
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[0].state, RuleStatus::Active);
    assert_eq!(snap.rules[0].guard, GuardState::TooFewRequests);
    // Keep going: within a tick (1 s here) of the 20th experiment request, it stops.
    let mut aborted_after = None;
    for i in 0..400 {
        call(&chaos, false).await;
        tokio::time::advance(Duration::from_millis(10)).await;
        if chaos.rules_snapshot_state() == RuleStatus::Aborted {
            aborted_after = Some(i);
            break;
        }
    }
    let snap = chaos.snapshot();
    let r = &snap.rules[0];
    assert!(aborted_after.is_some(), "never aborted: {:?}", r.cohorts);
    let abort = r.abort.as_ref().unwrap();
    let breach = abort.breach.as_ref().unwrap();
    assert_eq!(breach.condition, "error_rate_above");
    assert_eq!(breach.observed, "100.00%");
    assert_eq!(breach.threshold, "5%");
    assert!(breach.requests >= 20);
    assert_eq!(r.guard, GuardState::Breached);
    // Judged at most a tick after the window held 20 errors: 20 experiment calls need
    // about 40 calls at 50%, 10 ms apart; a tick is 1 s, 100 calls.
    assert!(aborted_after.unwrap() < 200, "{aborted_after:?}");
    // Nothing is injected from then on.
    let injected = r.counters.injected;
    for _ in 0..200 {
        assert!(call(&chaos, false).await);
    }
    assert_eq!(chaos.snapshot().rules[0].counters.injected, injected);
    // An event and the JSON say the same.
    let mut seen = None;
    while let Ok(e) = events.try_recv() {
        if let Event::RuleAborted { rule, breach, .. } = e {
            seen = Some((rule, breach));
        }
    }
    let (rule, b) = seen.expect("a RuleAborted event");
    assert_eq!(rule, "r");
    assert_eq!(b.unwrap().condition, "error_rate_above");
    let json = serde_json::to_value(chaos.snapshot()).unwrap();
    assert_eq!(json["rules"][0]["state"], "aborted");
    assert_eq!(json["rules"][0]["guard"], "breached");
    assert_eq!(
        json["rules"][0]["abort"]["breach"]["threshold"], "5%",
        "{json}"
    );
}

trait StateOf {
    fn rules_snapshot_state(&self) -> RuleStatus;
}

impl StateOf for Chaos {
    fn rules_snapshot_state(&self) -> RuleStatus {
        self.snapshot().rules[0].state
    }
}

#[tokio::test(start_paused = true)]
async fn p99_above_aborts_a_rule_that_slows_too_much() {
    let chaos = engine(
        "limits: { max_delay: 10s }\nrules:\n  - id: slow\n    point: queue.publish\n    fault: { delay: 3s }\n    guard: { p99_above: 2s, min_requests: 20, window: 30s }\n",
    );
    // 25 calls at once, each slowed by 3 s: the window holds them all.
    let calls: Vec<_> = (0..25)
        .map(|_| {
            let chaos = chaos.clone();
            tokio::spawn(async move { call(&chaos, false).await })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap());
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    let snap = chaos.snapshot();
    let r = &snap.rules[0];
    assert_eq!(r.state, RuleStatus::Aborted, "{:?}", r.cohorts);
    let b = r.abort.as_ref().unwrap().breach.as_ref().unwrap();
    assert_eq!(b.condition, "p99_above");
    assert_eq!(b.threshold, "2s");
    let p99 = r.cohorts.experiment.p99.unwrap().0;
    assert!(p99 >= Duration::from_secs(3), "{p99:?}");
}

#[tokio::test(start_paused = true)]
async fn vs_control_aborts_only_when_the_experiment_diverges() {
    let guard =
        "guard: { vs_control: { error_rate_increase_above: 2% }, min_requests: 20, window: 10s }";
    let harmful = engine(&format!(
        "rules:\n  - id: r\n    point: queue.publish\n    fault: {{ error: unavailable }}\n    rate: 50%\n    {guard}\n"
    ));
    let harmless = engine(&format!(
        "rules:\n  - id: r\n    point: queue.publish\n    fault: {{ delay: 1ms }}\n    rate: 50%\n    {guard}\n"
    ));
    for _ in 0..300 {
        // Organic failures at 5% on both sides: control is not clean, but alike.
        for chaos in [&harmful, &harmless] {
            let n = chaos.snapshot().rules[0].counters.matched;
            call(chaos, n % 20 == 0).await;
        }
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    let h = harmful.snapshot();
    assert_eq!(h.rules[0].state, RuleStatus::Aborted);
    let b = h.rules[0].abort.as_ref().unwrap().breach.as_ref().unwrap();
    assert_eq!(b.condition, "vs_control.error_rate_increase_above");
    let ok = harmless.snapshot();
    assert_eq!(
        ok.rules[0].state,
        RuleStatus::Active,
        "{:?}",
        ok.rules[0].abort
    );
    assert_eq!(ok.rules[0].guard, GuardState::Holding);
    assert!(ok.rules[0].cohorts.experiment.requests >= 20);
    assert!(ok.rules[0].cohorts.control.requests >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_errors_retires_the_rule_after_exactly_n_errors_under_concurrency() {
    let chaos = engine(
        "rules:\n  - { id: budget, point: queue.publish, fault: { error: unavailable }, max_errors: 7 }\n",
    );
    let mut events = chaos.subscribe();
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let chaos = chaos.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                if !call(&chaos, false).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 7, "user-visible errors");
    let snap = chaos.snapshot();
    let r = &snap.rules[0];
    assert_eq!(r.state, RuleStatus::Retired);
    let b = r.budget.unwrap();
    assert_eq!((b.max_errors, b.spent), (7, 7));
    assert_eq!(r.counters.injected, 7);
    assert_eq!(r.cohorts.experiment.total_errors, 7);
    let mut retired = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, Event::RuleRetired { ref rule, .. } if rule == "budget") {
            retired += 1;
        }
    }
    assert_eq!(retired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_guarded_ramp_climbs_only_after_full_steps_that_held() {
    let yaml = "rules:\n  - id: ramp\n    point: queue.publish\n    fault: { delay: 1ms }\n    ramp: { steps: [10%, 50%, 100%], every: 10s }\n    guard: { error_rate_above: 50%, min_requests: 20, window: 5s }\n";
    // Busy: 50 calls a second. Each step sees enough requests and the guard holds.
    let busy = engine(yaml);
    for _ in 0..35 {
        for _ in 0..50 {
            call(&busy, false).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let ramp = busy.snapshot().rules[0].ramp.clone().unwrap();
    assert_eq!(ramp.step, 2, "{ramp:?}");
    assert_eq!(ramp.rate.to_string(), "100%");
    assert!(ramp.held_back.is_none());
    assert!(ramp.next_in.is_none(), "the last step");

    // Quiet: 2 calls a second, 10% of them in the experiment: never 20 in a step.
    let quiet = engine(yaml);
    for _ in 0..35 {
        for _ in 0..2 {
            call(&quiet, false).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let ramp = quiet.snapshot().rules[0].ramp.clone().unwrap();
    assert_eq!(ramp.step, 0, "{ramp:?}");
    let why = ramp.held_back.unwrap();
    assert!(why.contains("of the 20 requests"), "{why}");
    assert!(ramp.since.0 >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_ramp_that_breaches_is_aborted() {
    let chaos = engine(
        "rules:\n  - id: ramp\n    point: queue.publish\n    fault: { error: unavailable }\n    ramp: { steps: [20%, 100%], every: 10s }\n    guard: { error_rate_above: 50%, min_requests: 20, window: 5s }\n",
    );
    for _ in 0..20 {
        for _ in 0..50 {
            call(&chaos, false).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let r = &chaos.snapshot().rules[0];
    assert_eq!(r.state, RuleStatus::Aborted);
    assert_eq!(r.ramp.as_ref().unwrap().step, 0, "a breach never climbs");
}

#[tokio::test]
async fn the_service_guard_aborts_everything_and_turns_the_kill_switch_on() {
    let chaos = engine(
        "guard: { error_rate_above: 10%, min_requests: 20, window: 5s }\nrules:\n  - { id: a, point: queue.publish, target: other, fault: { error: unavailable } }\n  - { id: b, point: server, fault: { abort: 503 } }\n",
    );
    let mut events = chaos.subscribe();
    // Healthy organic traffic: the guard holds.
    for _ in 0..50 {
        assert!(call(&chaos, false).await);
    }
    let snap = chaos.snapshot();
    let g = snap.service_guard.unwrap();
    assert_eq!(g.state, GuardState::Holding);
    // Fewer requests than the sample wants a second: every one timed, and said so.
    assert_eq!((g.requests, g.timed), (50, 50));
    assert!(g.p99.is_some());
    // The worker's own dependency starts failing: organic errors rise.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !chaos.is_killed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service guard never fired"
        );
        call(&chaos, true).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let snap = chaos.snapshot();
    assert!(snap.killed);
    assert!(snap.rules.iter().all(|r| r.state == RuleStatus::Killed));
    for r in &snap.rules {
        let a = r.abort.as_ref().expect("every rule aborted");
        assert!(
            a.reason.starts_with("service guard breached"),
            "{}",
            a.reason
        );
    }
    let g = snap.service_guard.unwrap();
    assert_eq!(g.state, GuardState::Breached);
    assert_eq!(
        g.breach.unwrap().breach.unwrap().condition,
        "error_rate_above"
    );
    let (mut aborted, mut killed) = (0, false);
    while let Ok(e) = events.try_recv() {
        match e {
            Event::RuleAborted { .. } => aborted += 1,
            Event::Killed => killed = true,
            _ => {}
        }
    }
    assert_eq!((aborted, killed), (2, true));
}

#[test]
fn guards_are_validated_with_where_and_why() {
    let bad = [
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { window: 10s } }]",
            "field `guard`: a guard needs `error_rate_above`, `p99_above` or `vs_control`",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { p99_above: 1s, window: 2h } }]",
            "field `guard.window`: guard window 2h must be from 1s to 1h",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { vs_control: {} } }]",
            "field `guard.vs_control`: vs_control needs",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { vs_control: { p99_ratio_above: 0.5 } } }]",
            "p99_ratio_above 0.5 must be a number of at least 1",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { p99_above: 1s, min_requests: 0 } }]",
            "min_requests 0 would judge an empty window",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, max_errors: 0 }]",
            "max_errors 0 would never inject",
        ),
        (
            "guard: { vs_control: { p99_ratio_above: 2 } }\nrules: []",
            "field `guard.vs_control`: the service guard has no control cohort",
        ),
        (
            "guard: { error_rate_above: 5%, window: 5m }\nrules: []",
            "the service guard's window 5m must be at most 60s",
        ),
        (
            "rules: [{ id: r, point: server, fault: { abort: 503 }, guard: { vs_control: [1] } }]",
            "vs_control",
        ),
    ];
    for (yaml, want) in bad {
        let err = RuleSet::parse(Format::Yaml, yaml).unwrap_err().to_string();
        assert!(err.contains(want), "{yaml}\n  got: {err}\n want: {want}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_aborted_rule_stays_aborted_until_its_definition_changes() {
    let yaml = "rules:\n  - { id: r, point: queue.publish, fault: { error: unavailable } }\n";
    let chaos = engine(yaml);
    chaos.abort_rule("r", "by hand").unwrap();
    // The same document again, and the rule removed and added back unchanged.
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    assert_eq!(chaos.snapshot().rules[0].state, RuleStatus::Aborted);
    let rule = chaos.rules().rules[0].clone();
    chaos.remove_rule("r").unwrap();
    chaos.add_rule(rule).unwrap();
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[0].state, RuleStatus::Aborted);
    assert_eq!(snap.rules[0].abort_reason.as_deref(), Some("by hand"));
    assert!(call(&chaos, false).await);
    // Changed: a fresh start.
    chaos
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules:\n  - { id: r, point: queue.publish, fault: { error: timeout } }\n",
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(chaos.snapshot().rules[0].state, RuleStatus::Active);
    assert!(!call(&chaos, false).await);
}
