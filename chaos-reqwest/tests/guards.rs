//! Experiments that stop themselves, end to end: an axum checkout service (behind the
//! server layer) calls a payments service through the chaos middleware. A rule slows or
//! fails payments; its cohorts are judged by what checkout's callers saw.
//!
//! Real servers on loopback and the real clock, so the bounds are generous.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use chaos_core::{Chaos, Event, GuardState, RuleSnapshot, RuleStatus};
use chaos_reqwest::ChaosMiddleware;
use chaos_tower::ChaosLayer;
use http::StatusCode;
use reqwest_middleware::ClientBuilder;
use support::{dependency_at, engine, reqwest_client, serve};

/// Checkout: asks payments for a price. With `fallback`, a 100 ms timeout and a fallback
/// answer; without, any failure of payments is a 502. `failing` makes checkout fail on
/// its own (organic errors).
fn checkout(
    chaos: &Chaos,
    payments: SocketAddr,
    fallback: bool,
    failing: Arc<AtomicBool>,
) -> Router {
    let mw = ChaosMiddleware::builder(chaos).target("payments");
    let (http, mw) = if fallback {
        let t = Duration::from_millis(100);
        (
            reqwest::Client::builder()
                .no_proxy()
                .timeout(t)
                .build()
                .unwrap(),
            mw.timeout(t),
        )
    } else {
        (reqwest_client(), mw)
    };
    let client = ClientBuilder::new(http).with(mw.build()).build();
    Router::new().route(
        "/checkout",
        get(move || {
            let client = client.clone();
            let failing = failing.clone();
            async move {
                if failing.load(Ordering::Relaxed) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "checkout is broken");
                }
                match client.get(format!("http://{payments}/price")).send().await {
                    Ok(r) if r.status().is_success() => (StatusCode::OK, "paid"),
                    _ if fallback => (StatusCode::OK, "pending: will charge later"),
                    _ => (StatusCode::BAD_GATEWAY, "payments failed"),
                }
            }
        }),
    )
}

struct Shop {
    chaos: Chaos,
    url: String,
    failing: Arc<AtomicBool>,
}

async fn shop(yaml: &str, fallback: bool) -> Shop {
    let chaos = engine(yaml);
    let (payments, _) = dependency_at().await;
    let failing = Arc::new(AtomicBool::new(false));
    let router = checkout(&chaos, payments, fallback, failing.clone());
    let layer = ChaosLayer::builder(&chaos).target("checkout").build();
    let addr = serve(router, Some(layer)).await;
    Shop {
        chaos,
        url: format!("http://{addr}/checkout"),
        failing,
    }
}

fn rule(chaos: &Chaos) -> RuleSnapshot {
    chaos.snapshot().rules[0].clone()
}

/// Sends checkout requests from `workers` loops until `done` holds or `limit` passes;
/// the statuses seen.
async fn load(
    shop: &Shop,
    workers: usize,
    limit: Duration,
    done: impl Fn(&Chaos) -> bool,
) -> Vec<u16> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (url, stop) = (shop.url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest_client();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let res = http.get(&url).send().await.unwrap();
                seen.push(res.status().as_u16());
            }
            seen
        }));
    }
    let deadline = Instant::now() + limit;
    while !done(&shop.chaos) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

const SLOW_PAYMENTS: &str = "rules:
  - id: payments-slow
    point: client
    target: payments
    fault: { delay: 300ms }
    ramp: { steps: [20%, 50%, 100%], every: 1s }
    guard: { error_rate_above: 10%, p99_above: 1s, min_requests: 20, window: 2s }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_fallback_the_guard_holds_and_the_ramp_climbs_to_its_last_step() {
    let shop = shop(SLOW_PAYMENTS, true).await;
    let statuses = load(&shop, 16, Duration::from_secs(30), |c| {
        rule(c).ramp.is_some_and(|r| r.step == 2)
    })
    .await;
    let r = rule(&shop.chaos);
    assert_eq!(r.ramp.as_ref().unwrap().step, 2, "{:?}", r.ramp);
    assert_eq!(r.state, RuleStatus::Active, "{:?}", r.abort);
    assert_ne!(r.guard, GuardState::Breached);
    // Checkout's callers never saw the slow payments: every answer was a 200.
    assert!(statuses.iter().all(|s| *s == 200));
    let exp = &r.cohorts.experiment;
    assert!(exp.total_requests >= 40, "{exp:?}");
    assert_eq!(exp.total_errors, 0);
    assert!(r.cohorts.control.total_requests > 0);
    // The experiment waited on the fallback's timeout; control did not.
    assert!(exp.p50.unwrap().0 >= Duration::from_millis(64), "{exp:?}");
    assert_eq!(r.counters.injected, exp.total_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_fallback_the_rule_is_aborted_within_a_tick_and_injects_no_more() {
    let shop = shop(&SLOW_PAYMENTS.replace("delay: 300ms", "abort: 503"), false).await;
    let mut events = shop.chaos.subscribe();
    // A watcher notes when the window first held enough experiment requests, and when
    // the rule was aborted.
    let watch = {
        let chaos = shop.chaos.clone();
        tokio::spawn(async move {
            let (mut enough, deadline) = (None, Instant::now() + Duration::from_secs(20));
            loop {
                let r = rule(&chaos);
                if enough.is_none() && r.cohorts.experiment.requests >= 20 {
                    enough = Some(Instant::now());
                }
                if r.state == RuleStatus::Aborted || Instant::now() > deadline {
                    return (enough, Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let statuses = load(&shop, 8, Duration::from_secs(20), |c| {
        rule(c).state == RuleStatus::Aborted
    })
    .await;
    let (enough, aborted) = watch.await.unwrap();
    let r = rule(&shop.chaos);
    assert_eq!(r.state, RuleStatus::Aborted, "{:?}", r.cohorts);
    assert!(statuses.contains(&502));
    let b = r.abort.as_ref().unwrap().breach.clone().unwrap();
    assert_eq!(b.condition, "error_rate_above");
    assert_eq!(b.observed, "100.00%");
    assert_eq!(b.threshold, "10%");
    assert!(b.requests >= 20);
    // A tick is 200 ms here (a tenth of the 2 s window); the bound is generous.
    let lag = aborted.duration_since(enough.expect("the window filled"));
    assert!(
        lag < Duration::from_secs(2),
        "aborted {lag:?} after the window filled"
    );
    // Nothing injected from then on: checkout answers 200 again.
    let injected = r.counters.injected;
    let http = reqwest_client();
    for _ in 0..50 {
        assert_eq!(http.get(&shop.url).send().await.unwrap().status(), 200);
    }
    assert_eq!(rule(&shop.chaos).counters.injected, injected);
    let mut seen = false;
    while let Ok(e) = events.try_recv() {
        seen |= matches!(e, Event::RuleAborted { ref rule, .. } if rule == "payments-slow");
    }
    assert!(seen, "a RuleAborted event");
}

const HALF: &str = "rules:
  - id: payments-half
    point: client
    target: payments
    fault: FAULT
    rate: 50%
    guard: { vs_control: { error_rate_increase_above: 5% }, min_requests: 30, window: 3s }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vs_control_aborts_a_rule_whose_experiment_fails_while_control_is_clean() {
    let harmful = shop(&HALF.replace("FAULT", "{ abort: 503 }"), false).await;
    load(&harmful, 8, Duration::from_secs(20), |c| {
        rule(c).state == RuleStatus::Aborted
    })
    .await;
    let r = rule(&harmful.chaos);
    assert_eq!(r.state, RuleStatus::Aborted);
    let b = r.abort.unwrap().breach.unwrap();
    assert_eq!(b.condition, "vs_control.error_rate_increase_above");
    assert!(b.observed.contains("vs control 0.00%"), "{}", b.observed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vs_control_lets_a_harmless_fault_run() {
    let harmless = shop(&HALF.replace("FAULT", "{ delay: 2ms }"), false).await;
    // Run until both cohorts have filled the window twice over, then some.
    let started = Instant::now();
    load(&harmless, 8, Duration::from_secs(20), |c| {
        let r = rule(c);
        r.cohorts.control.requests >= 60
            && r.cohorts.experiment.requests >= 60
            && started.elapsed() > Duration::from_secs(3)
    })
    .await;
    let r = rule(&harmless.chaos);
    assert_eq!(r.state, RuleStatus::Active, "{:?}", r.abort);
    assert_eq!(r.guard, GuardState::Holding);
    assert!(r.cohorts.experiment.requests >= 60, "{:?}", r.cohorts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_guard_stops_everything_when_checkout_fails_on_its_own() {
    let shop = shop(
        "guard: { error_rate_above: 20%, min_requests: 20, window: 2s }
rules:
  - { id: payments-slow, point: client, target: payments, fault: { delay: 1ms }, rate: 10% }
  - { id: orders-down, point: client, target: orders, fault: { abort: 503 } }
",
        true,
    )
    .await;
    let mut events = shop.chaos.subscribe();
    // Healthy for a while: the guard holds.
    let first = load(&shop, 4, Duration::from_millis(500), |_| false).await;
    assert!(first.iter().all(|s| *s == 200));
    assert_eq!(
        shop.chaos.snapshot().service_guard.unwrap().state,
        GuardState::Holding
    );
    // Checkout breaks by itself.
    shop.failing.store(true, Ordering::Relaxed);
    load(&shop, 4, Duration::from_secs(20), Chaos::is_killed).await;
    let snap = shop.chaos.snapshot();
    assert!(snap.killed, "the kill switch is on");
    for r in &snap.rules {
        let a = r.abort.as_ref().expect("every rule aborted");
        assert!(
            a.reason
                .starts_with("service guard breached: error_rate_above"),
            "{}",
            a.reason
        );
    }
    let g = snap.service_guard.unwrap();
    assert_eq!(g.state, GuardState::Breached);
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

/// The same in a test's own code (`chaos_core::testing::Experiment`), two experiments at
/// once against one server: each has its scenario, and neither sees the other's fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn experiments_in_tests_run_in_parallel_against_one_server() {
    use chaos_core::rules::{Abort, Delay, Fault, Rule};
    use chaos_core::testing::{Experiment, Scenario, Verdict};
    let shop = shop("rules: []", true).await;
    let http = reqwest_client();
    let send = |s: Scenario| {
        let (http, url) = (http.clone(), shop.url.clone());
        async move {
            let res = http
                .get(url)
                .header("x-chaos", s.header_value())
                .header("x-test-traffic", "1")
                .send()
                .await;
            res.is_ok_and(|r| r.status().is_success())
        }
    };
    let slow_payments = Experiment::new(
        &shop.chaos,
        Rule::new(
            "payments-slow",
            "client",
            Fault::Delay(Delay::Fixed(Duration::from_millis(300))),
        )
        .with_target("payments"),
    )
    .tolerate(0.0, Some(Duration::from_secs(1)))
    .run(30, send);
    let checkout_down = Experiment::new(
        &shop.chaos,
        Rule::new("checkout-down", "server", Fault::Abort(Abort::http(503))),
    )
    .run(30, send);
    let (held, refuted) = tokio::join!(slow_payments, checkout_down);
    assert_eq!(held.verdict, Verdict::Held, "{}", held.reason);
    assert_eq!(held.cohorts.experiment.total_requests, 30);
    assert_eq!(
        held.cohorts.experiment.total_errors, 0,
        "the fallback answered"
    );
    assert!(
        held.injected.p99.unwrap() >= Duration::from_millis(100),
        "the timeout was waited"
    );
    assert_eq!(refuted.verdict, Verdict::Refuted, "{}", refuted.reason);
    assert_eq!(refuted.injected.errors, 30);
    assert_eq!(
        refuted.baseline.errors, 0,
        "nothing of the other test leaked in"
    );
    assert!(shop.chaos.rules().rules.is_empty(), "both rules removed");
}
