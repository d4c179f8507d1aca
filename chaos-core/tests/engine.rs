//! Decisions, limits, expiry, the kill switch, signatures and the generic injection point.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::{
    Abort, Delay, ErrorKind, Fault, Format, Match, Mode, Rate, Rule, RuleSet, Step,
};
use chaos_core::testing::Scenario;
use chaos_core::{
    Action, Chaos, ChaosContext, ChaosFutureExt, Decision, Event, Point, RequestView, RuleStatus,
};
use http::{HeaderMap, HeaderValue, Method};
use tokio::time::Instant;

fn yaml(text: &str) -> RuleSet {
    RuleSet::parse(Format::Yaml, text).unwrap()
}

fn abort(id: &str, point: &str) -> Rule {
    Rule::new(id, point, Fault::Abort(Abort::http(503)))
}

fn delay(id: &str, point: &str, d: Duration) -> Rule {
    Rule::new(id, point, Fault::Delay(Delay::Fixed(d)))
}

fn server() -> RequestView<'static> {
    RequestView::new(Point::Server, "")
}

fn injects(chaos: &Chaos, view: &RequestView<'_>) -> bool {
    chaos.decide(view).is_inject()
}

fn counters(chaos: &Chaos, id: &str) -> chaos_core::RuleCounters {
    chaos
        .snapshot()
        .rules
        .into_iter()
        .find(|r| r.rule.id == id)
        .unwrap()
        .counters
}

#[test]
fn empty_engine_is_not_armed_and_passes() {
    let chaos = Chaos::new();
    assert!(!chaos.is_armed());
    assert!(!injects(&chaos, &server()));
    chaos.add_rule(abort("a", "server")).unwrap();
    assert!(chaos.is_armed());
    assert!(injects(&chaos, &server()));
}

#[test]
fn rate_is_accurate_within_three_sigma() {
    let chaos = Chaos::builder().seed(42).build().unwrap();
    chaos
        .add_rule(abort("quarter", "server").with_rate(Rate::new(0.25).unwrap()))
        .unwrap();
    let n = 100_000u32;
    let hits = (0..n).filter(|_| injects(&chaos, &server())).count() as f64;
    let (p, nf) = (0.25, f64::from(n));
    let sigma = (nf * p * (1.0 - p)).sqrt();
    assert!(
        (hits - nf * p).abs() < 3.0 * sigma,
        "{hits} injections of {n} at 25% (3σ = {:.0})",
        3.0 * sigma
    );
    // And 0% / 100% are exact.
    chaos.replace(RuleSet::default()).unwrap();
    chaos
        .add_rule(abort("never", "server").with_rate(Rate::NEVER))
        .unwrap();
    assert_eq!(
        (0..10_000).filter(|_| injects(&chaos, &server())).count(),
        0
    );
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let run = |seed| {
        let chaos = Chaos::builder().seed(seed).build().unwrap();
        chaos
            .add_rule(abort("half", "server").with_rate(Rate::new(0.5).unwrap()))
            .unwrap();
        (0..200)
            .map(|_| injects(&chaos, &server()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn sticky_by_gives_each_key_one_decision() {
    let chaos = Chaos::new();
    chaos
        .add_rule(
            abort("cohort", "server")
                .with_rate(Rate::new(0.3).unwrap())
                .with_sticky_by("x-user-id"),
        )
        .unwrap();
    let decide_for = |user: &str| {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_str(user).unwrap());
        injects(&chaos, &server().headers(&h))
    };
    let first: Vec<bool> = (0..2000)
        .map(|i| decide_for(&format!("user-{i}")))
        .collect();
    for _ in 0..3 {
        let again: Vec<bool> = (0..2000)
            .map(|i| decide_for(&format!("user-{i}")))
            .collect();
        assert_eq!(again, first, "a user's decision changed");
    }
    let share = first.iter().filter(|b| **b).count() as f64 / 2000.0;
    assert!((share - 0.3).abs() < 0.05, "cohort share {share}");

    // A request without the key is never in the cohort.
    assert_eq!((0..1000).filter(|_| injects(&chaos, &server())).count(), 0);
    // Cohorts nest: everyone in at 10% is also in at 30% (ramping keeps the first users).
    let narrow = Chaos::new();
    narrow
        .add_rule(
            abort("cohort", "server")
                .with_rate(Rate::new(0.1).unwrap())
                .with_sticky_by("x-user-id"),
        )
        .unwrap();
    for (i, in_wide_cohort) in first.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-user-id",
            HeaderValue::from_str(&format!("user-{i}")).unwrap(),
        );
        if injects(&narrow, &server().headers(&h)) {
            assert!(
                *in_wide_cohort,
                "user-{i} is in the 10% cohort but not the 30% one"
            );
        }
    }
}

#[test]
fn sequences_count_per_scope_with_two_scopes_interleaved() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("retry", "server").with_sequence(vec![
            Step::Inject,
            Step::Inject,
            Step::Pass,
        ]))
        .unwrap();
    let a = ChaosContext::builder().scenario("scope-a").build();
    let b = ChaosContext::builder().scenario("scope-b").build();
    let in_a = || injects(&chaos, &server().context(Some(&a)));
    let in_b = || injects(&chaos, &server().context(Some(&b)));
    let seen: Vec<(bool, bool)> = (0..4).map(|_| (in_a(), in_b())).collect();
    assert_eq!(
        seen,
        [(true, true), (true, true), (false, false), (false, false)]
    );
    // Requests with no scenario use the rule's own scope, untouched by the two above.
    assert!(injects(&chaos, &server()));
}

#[test]
fn first_and_every_shorthands() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("first2", "server").with_first(2))
        .unwrap();
    let got: Vec<bool> = (0..5).map(|_| injects(&chaos, &server())).collect();
    assert_eq!(got, [true, true, false, false, false]);

    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            "rules:\n  - { id: every3, point: server, fault: { abort: 503 }, every: 3 }\n",
        ))
        .unwrap();
    let got: Vec<bool> = (0..7).map(|_| injects(&chaos, &server())).collect();
    assert_eq!(got, [false, false, true, false, false, true, false]);
}

#[test]
fn max_hits_retires_a_rule_per_scope() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("twice", "server").with_max_hits(2))
        .unwrap();
    let got: Vec<bool> = (0..4).map(|_| injects(&chaos, &server())).collect();
    assert_eq!(got, [true, true, false, false]);
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[0].state, RuleStatus::Retired);
    assert_eq!(snap.rules[0].counters.skipped_by_limit, 2);
    // Another scope still has its own budget.
    let s = ChaosContext::builder().scenario("other").build();
    assert!(injects(&chaos, &server().context(Some(&s))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_is_never_exceeded_and_permits_are_released() {
    let chaos = Chaos::new();
    chaos
        .add_rule(delay("slow", "work", Duration::from_millis(30)).with_max_active(3))
        .unwrap();
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let chaos = chaos.clone();
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            match chaos.decide(&RequestView::new(Point::from_name("work"), "")) {
                Decision::Inject(i) => {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // The slot is held while the delay runs.
                    let _ = i.run(async {}).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    true
                }
                Decision::Pass => false,
            }
        }));
    }
    let mut injected = 0;
    for t in tasks {
        injected += u32::from(t.await.unwrap());
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(injected >= 3);
    let c = counters(&chaos, "slow");
    assert_eq!(c.active, 0, "every permit released");
    assert_eq!(u64::from(injected), c.injected);
    assert_eq!(c.skipped_by_limit, 40 - c.injected);

    // A permit is released when the decision is dropped unused.
    let d = chaos.decide(&RequestView::new(Point::from_name("work"), ""));
    assert!(d.is_inject());
    assert_eq!(counters(&chaos, "slow").active, 1);
    drop(d);
    assert_eq!(counters(&chaos, "slow").active, 0);
}

#[test]
fn global_max_active_caps_all_rules() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            "max_active: 2\nrules:\n  - { id: a, point: server, fault: { abort: 503 } }\n  - { id: b, point: client, fault: { abort: 503 } }\n",
        ))
        .unwrap();
    let d1 = chaos.decide(&server());
    let d2 = chaos.decide(&RequestView::new(Point::Client, "x"));
    let d3 = chaos.decide(&server());
    assert!(d1.is_inject() && d2.is_inject() && !d3.is_inject());
    assert_eq!(chaos.snapshot().stats.active, 2);
    drop((d1, d2));
    assert!(chaos.decide(&server()).is_inject());
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_rules_under_paused_time() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("short", "server").with_ttl(Duration::from_secs(10)))
        .unwrap();
    chaos
        .replace(yaml(
            "defaults: { ttl: 1m }\nrules:\n  - { id: short, point: server, fault: { abort: 503 }, ttl: 10s }\n  - { id: dflt, point: client, fault: { abort: 503 } }\n",
        ))
        .unwrap();
    assert!(injects(&chaos, &server()));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!injects(&chaos, &server()), "expired rule injected");
    assert!(
        injects(&chaos, &RequestView::new(Point::Client, "x")),
        "default ttl is 1m"
    );
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[0].state, RuleStatus::Expired);
    assert_eq!(snap.rules[0].counters.expired, 1);
    assert_eq!(snap.rules[1].state, RuleStatus::Active);
    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(!injects(&chaos, &RequestView::new(Point::Client, "x")));
    assert_eq!(chaos.snapshot().rules[1].state, RuleStatus::Expired);
}

#[test]
fn expires_at_in_the_past_never_injects() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml("rules:\n  - { id: old, point: server, fault: { abort: 503 }, expires_at: 2001-01-01T00:00:00Z }\n"))
        .unwrap();
    assert!(!injects(&chaos, &server()));
    assert_eq!(chaos.snapshot().rules[0].state, RuleStatus::Expired);
}

#[tokio::test(start_paused = true)]
async fn kill_switch_releases_in_flight_delays_and_hangs_at_once() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            "rules:\n  - { id: slow, point: slow, fault: { delay: 20s } }\n  - { id: stuck, point: stuck, fault: { drop: hang } }\n",
        ))
        .unwrap();
    let started = Instant::now();
    let (c1, c2) = (chaos.clone(), chaos.clone());
    let slow = tokio::spawn(async move { c1.inject("slow", "", async { "done" }).await });
    let stuck = tokio::spawn(async move { c2.inject("stuck", "", async { "done" }).await });
    let waiting = match chaos.decide(&RequestView::new(Point::from_name("slow"), "")) {
        Decision::Inject(i) => match i.action() {
            Action::Wait(w) => tokio::spawn(async move { w.await.1 }),
            other => panic!("{other:?}"),
        },
        Decision::Pass => panic!("no injection"),
    };
    tokio::task::yield_now().await;
    assert!(!slow.is_finished() && !stuck.is_finished());
    chaos.kill();
    // Released without the clock moving: they waited on the kill signal, not only a timer.
    assert_eq!(slow.await.unwrap().unwrap(), "done");
    assert_eq!(
        stuck.await.unwrap().unwrap(),
        "done",
        "a released hang runs the work"
    );
    assert!(
        waiting.await.unwrap().is_ok(),
        "a killed wait lets the work go on"
    );
    assert_eq!(Instant::now(), started);
    // No new injection while killed; resume brings the rules back.
    assert!(chaos.is_killed() && !chaos.is_armed());
    assert!(!injects(
        &chaos,
        &RequestView::new(Point::from_name("slow"), "")
    ));
    assert_eq!(chaos.snapshot().rules[0].state, RuleStatus::Killed);
    chaos.resume();
    assert!(injects(
        &chaos,
        &RequestView::new(Point::from_name("slow"), "")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_starts_after_the_kill_returns_at_once() {
    let chaos = Chaos::new();
    chaos
        .add_rule(delay("slow", "slow", Duration::from_secs(20)))
        .unwrap();
    let Decision::Inject(i) = chaos.decide(&RequestView::new(Point::from_name("slow"), "")) else {
        panic!()
    };
    let Action::Wait(w) = i.action() else {
        panic!("a delay waits")
    };
    chaos.kill();
    let started = Instant::now();
    assert!(w.await.1.is_ok());
    assert_eq!(Instant::now(), started, "returned without the 20 s timer");
}

#[test]
fn kill_switch_in_the_rules_file_and_forced_off() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            "kill_switch: true\nrules:\n  - { id: a, point: server, fault: { abort: 503 } }\n",
        ))
        .unwrap();
    assert!(chaos.is_killed() && !injects(&chaos, &server()));
    chaos.resume();
    assert!(chaos.is_killed(), "the file's kill switch stays on");

    let off = Chaos::builder()
        .disabled(true)
        .rules(yaml(
            "rules:\n  - { id: a, point: server, fault: { abort: 503 } }\n",
        ))
        .build()
        .unwrap();
    off.resume();
    assert!(off.is_killed() && !injects(&off, &server()));
}

#[tokio::test(start_paused = true)]
async fn hang_ends_at_the_ceiling() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml("limits: { max_hang: 2s }\nrules:\n  - { id: stuck, point: q, fault: { drop: hang } }\n"))
        .unwrap();
    let started = Instant::now();
    let err = chaos.inject("q", "", async {}).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // A caller's own timeout cuts it first.
    let r = tokio::time::timeout(Duration::from_millis(100), chaos.inject("q", "", async {})).await;
    assert!(r.is_err());
    assert_eq!(
        counters(&chaos, "stuck").active,
        0,
        "a dropped hang frees its slot"
    );
}

#[tokio::test(start_paused = true)]
async fn generic_injection_point_applies_each_fault() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            r#"
rules:
  - { id: d, point: p, target: delay, fault: { delay: 250ms } }
  - { id: e, point: p, target: error, fault: { error: "sqlstate:40001" } }
  - { id: r, point: p, target: reset, fault: { drop: reset } }
  - { id: a, point: p, target: abort, fault: { abort: "grpc:14" } }
  - { id: b, point: p, target: body, fault: { body: { truncate_after: 10 } } }
"#,
        ))
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(chaos.inject("p", "delay", async { 1 }).await.unwrap(), 1);
    assert_eq!(t0.elapsed(), Duration::from_millis(250));

    let e = chaos.inject("p", "error", async { 1 }).await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("40001"));
    assert_eq!(e.rule_id(), "e");
    assert_eq!(e.to_string(), "injected fault: sqlstate:40001 (rule `e`)");
    assert!(
        chaos
            .inject("p", "reset", async { 1 })
            .await
            .unwrap_err()
            .is_reset()
    );
    assert_eq!(
        chaos
            .inject("p", "abort", async { 1 })
            .await
            .unwrap_err()
            .abort(),
        Some("grpc:14".parse().unwrap())
    );
    assert_eq!(chaos.inject("p", "body", async { 1 }).await.unwrap(), 1);
    assert_eq!(chaos.inject("p", "nothing", async { 1 }).await.unwrap(), 1);

    // Found through an error chain.
    #[derive(Debug)]
    struct Wrapper(chaos_core::InjectedFault);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("publish failed")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let w = Wrapper(chaos.inject("p", "error", async {}).await.unwrap_err());
    assert!(chaos_core::InjectedFault::find(&w).is_some());
}

#[test]
fn rules_only_see_their_point_and_target() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("payments", "client").with_target("payments"))
        .unwrap();
    assert!(injects(
        &chaos,
        &RequestView::new(Point::Client, "payments")
    ));
    assert!(!injects(
        &chaos,
        &RequestView::new(Point::Client, "inventory")
    ));
    assert!(!injects(
        &chaos,
        &RequestView::new(Point::Server, "payments")
    ));
    assert!(!injects(&chaos, &RequestView::new(Point::Sql, "payments")));
}

/// Rules keyed only on an exact header value are found through an index on that value:
/// the matching value fires, others do not, file order still decides between lists, and
/// the comparison is on bytes (a UTF-8 value matches too).
#[test]
fn rules_keyed_on_an_exact_header_value() {
    let chaos = Chaos::new();
    let mut text = String::from(
        "rules:\n  - { id: first, point: server, match: { method: [DELETE] }, fault: { abort: 500 } }\n",
    );
    for i in 0..20 {
        text.push_str(&format!(
            "  - {{ id: t{i}, point: server, match: {{ headers: {{ x-tenant: tenant-{i} }} }}, fault: {{ abort: 503 }} }}\n"
        ));
    }
    text.push_str("  - { id: utf8, point: server, match: { headers: { x-tenant: \"café\" } }, fault: { abort: 503 } }\n");
    chaos.replace(yaml(&text)).unwrap();
    let decided = |tenant: &[u8], method: &'static Method| {
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_bytes(tenant).unwrap());
        match chaos.decide(&server().method(method).headers(&h)) {
            Decision::Inject(i) => Some(i.rule_id().to_owned()),
            Decision::Pass => None,
        }
    };
    assert_eq!(decided(b"tenant-7", &Method::GET).as_deref(), Some("t7"));
    assert_eq!(decided(b"tenant-19", &Method::GET).as_deref(), Some("t19"));
    assert_eq!(decided(b"tenant-20", &Method::GET), None);
    assert_eq!(decided(b"TENANT-7", &Method::GET), None);
    // An earlier rule in the file wins over an indexed one.
    assert_eq!(
        decided(b"tenant-7", &Method::DELETE).as_deref(),
        Some("first")
    );
    assert_eq!(
        decided("café".as_bytes(), &Method::GET).as_deref(),
        Some("utf8")
    );
    let mut none = HeaderMap::new();
    none.insert("x-other", HeaderValue::from_static("tenant-7"));
    assert!(!injects(&chaos, &server().headers(&none)));
}

#[test]
fn host_globs_ignore_case_and_refuse_ports() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            "rules:\n  - { id: eu, point: client, match: { host: \"*.eu.example.com\" }, fault: { abort: 503 } }\n  - { id: local, point: client, match: { host: 127.0.0.1 }, fault: { abort: 502 } }\n",
        ))
        .unwrap();
    let decided = |host: Option<&str>| {
        let mut view = RequestView::new(Point::Client, "payments");
        if let Some(h) = host {
            view = view.host(h);
        }
        match chaos.decide(&view) {
            Decision::Inject(i) => Some(i.rule_id().to_owned()),
            Decision::Pass => None,
        }
    };
    assert_eq!(decided(Some("pay.eu.example.com")).as_deref(), Some("eu"));
    assert_eq!(decided(Some("PAY.EU.Example.COM")).as_deref(), Some("eu"));
    assert_eq!(decided(Some("pay.us.example.com")), None);
    assert_eq!(decided(Some("127.0.0.1")).as_deref(), Some("local"));
    // A rule on the host never fires for a request whose host is unknown.
    assert_eq!(decided(None), None);
    // Else the host comes from an absolute URI, or from the `Host` header without its port.
    let uri: http::Uri = "http://api.eu.example.com:8443/v1/pay".parse().unwrap();
    assert!(injects(
        &chaos,
        &RequestView::new(Point::Client, "").uri(&uri)
    ));
    let origin_form: http::Uri = "/v1/pay".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
    let view = RequestView::new(Point::Client, "")
        .uri(&origin_form)
        .headers(&h);
    assert!(matches!(chaos.decide(&view), Decision::Inject(i) if i.rule_id() == "local"));
    h.insert("host", HeaderValue::from_static("[::1]:3000"));
    let view = RequestView::new(Point::Client, "")
        .uri(&origin_form)
        .headers(&h);
    assert!(!injects(&chaos, &view));

    for bad in ["example.com:8080", "http://example.com", "example.com/api"] {
        let text = format!(
            "rules:\n  - {{ id: h, point: client, match: {{ host: \"{bad}\" }}, fault: {{ abort: 503 }} }}\n"
        );
        let err = RuleSet::parse(Format::Yaml, &text).unwrap_err().to_string();
        assert!(
            err.contains("match.host") && err.contains("not a host glob"),
            "{err}"
        );
    }
}

#[test]
fn request_conditions() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            r#"
rules:
  - id: checkout
    point: server
    match:
      method: [POST, PUT]
      path: /api/checkout/*
      headers: { x-tenant: "test-*", x-debug: { present: true }, x-real: { absent: true }, x-region: eu }
      test_traffic: true
    fault: { abort: 503 }
  - id: sql
    point: sql
    match: { sql: "update orders*" }
    fault: { error: timeout }
"#,
        ))
        .unwrap();
    let tt = ChaosContext::builder().test_traffic(true).build();
    let mut h = HeaderMap::new();
    h.insert("x-tenant", HeaderValue::from_static("test-42"));
    h.insert("x-debug", HeaderValue::from_static("1"));
    h.insert("x-region", HeaderValue::from_static("eu"));
    let view =
        |m: &'static Method, path: &'static str, h: &HeaderMap, ctx: Option<&ChaosContext>| {
            injects(
                &chaos,
                &RequestView::new(Point::Server, "")
                    .method(m)
                    .path(path)
                    .headers(h)
                    .context(ctx),
            )
        };
    assert!(view(&Method::POST, "/api/checkout/1", &h, Some(&tt)));
    assert!(
        !view(&Method::GET, "/api/checkout/1", &h, Some(&tt)),
        "method"
    );
    assert!(!view(&Method::POST, "/api/cart", &h, Some(&tt)), "path");
    assert!(
        !view(&Method::POST, "/api/checkout/1", &h, None),
        "test traffic only"
    );
    let mut h2 = h.clone();
    h2.insert("x-tenant", HeaderValue::from_static("prod-1"));
    assert!(
        !view(&Method::POST, "/api/checkout/1", &h2, Some(&tt)),
        "glob"
    );
    let mut h3 = h.clone();
    h3.insert("x-real", HeaderValue::from_static("yes"));
    assert!(
        !view(&Method::POST, "/api/checkout/1", &h3, Some(&tt)),
        "absent"
    );
    let mut h4 = h.clone();
    h4.remove("x-debug");
    assert!(
        !view(&Method::POST, "/api/checkout/1", &h4, Some(&tt)),
        "present"
    );
    let mut h5 = h.clone();
    h5.insert("x-region", HeaderValue::from_static("us"));
    assert!(
        !view(&Method::POST, "/api/checkout/1", &h5, Some(&tt)),
        "exact"
    );

    assert!(injects(
        &chaos,
        &RequestView::new(Point::Sql, "db").sql("UPDATE orders SET paid = true WHERE id = $1")
    ));
    assert!(!injects(
        &chaos,
        &RequestView::new(Point::Sql, "db").sql("SELECT * FROM orders")
    ));
}

#[test]
fn scenario_rules_need_the_tag_and_tags_alone_select_only_operator_rules() {
    let chaos = Chaos::new();
    chaos
        .add_rule(abort("gameday", "server").with_match(Match::default().scenario("gameday-7")))
        .unwrap();
    let tagged = ChaosContext::builder().scenario("gameday-7").build();
    let other = ChaosContext::builder().scenario("gameday-8").build();
    assert!(injects(&chaos, &server().context(Some(&tagged))));
    assert!(!injects(&chaos, &server().context(Some(&other))));
    assert!(!injects(&chaos, &server()));
}

#[test]
fn shadow_mode_counts_without_injecting() {
    let chaos = Chaos::new();
    let mut events = chaos.subscribe();
    chaos
        .add_rule(abort("watch", "server").with_mode(Mode::Shadow))
        .unwrap();
    for _ in 0..3 {
        assert!(!injects(&chaos, &server()));
    }
    let c = counters(&chaos, "watch");
    assert_eq!((c.matched, c.shadowed, c.injected, c.active), (3, 3, 0, 0));
    assert_eq!(chaos.snapshot().stats.active, 0);
    let mut shadow_events = 0;
    while let Ok(e) = events.try_recv() {
        if let Event::Injected { shadow: true, .. } = e {
            shadow_events += 1;
        }
    }
    assert_eq!(shadow_events, 3);
    assert_eq!(chaos.journal().iter().filter(|e| e.shadow).count(), 3);
}

#[test]
fn events_and_versions() {
    let chaos = Chaos::new();
    let mut rx = chaos.subscribe();
    let v1 = chaos.add_rule(abort("a", "server")).unwrap();
    let v2 = chaos.add_rule(abort("b", "client")).unwrap();
    assert_eq!(v2, v1 + 1);
    let _ = chaos.decide(&server());
    chaos.kill();
    chaos.resume();
    chaos
        .abort_rule("b", "guard: error rate 9% above 5%")
        .unwrap();
    let got: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(
        got[0],
        Event::RulesChanged {
            version: v1,
            rules: 1
        }
    );
    assert_eq!(
        got[1],
        Event::RulesChanged {
            version: v2,
            rules: 2
        }
    );
    assert!(
        matches!(&got[2], Event::Injected { rule, point, shadow: false, .. } if rule == "a" && point == "server")
    );
    assert_eq!(got[3], Event::Killed);
    assert_eq!(got[4], Event::Resumed);
    assert_eq!(
        chaos.version(),
        v2 + 3,
        "kill, resume and abort each bump the version"
    );
    assert_eq!(
        got[5],
        Event::RuleAborted {
            rule: "b".into(),
            reason: "guard: error rate 9% above 5%".into(),
            breach: None,
        }
    );
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[1].state, RuleStatus::Aborted);
    assert!(!injects(&chaos, &RequestView::new(Point::Client, "")));
}

#[test]
fn edits_are_validated_and_unchanged_rules_keep_their_state() {
    let chaos = Chaos::new();
    chaos.add_rule(abort("a", "server").with_first(1)).unwrap();
    assert!(injects(&chaos, &server()));
    assert!(!injects(&chaos, &server()));
    // Adding another rule keeps `a`'s sequence where it was.
    chaos.add_rule(abort("b", "client")).unwrap();
    assert!(!injects(&chaos, &server()));
    assert_eq!(counters(&chaos, "a").injected, 1);

    let dup = chaos.add_rule(abort("a", "sql")).unwrap_err();
    assert_eq!(
        dup.to_string(),
        "rule `a`, field `id`: duplicate rule id `a`"
    );
    let missing = chaos.remove_rule("zzz").unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(missing.to_string(), "rule `zzz`: no rule with id `zzz`");
    assert!(chaos.abort_rule("zzz", "x").unwrap_err().is_not_found());

    // A changed rule starts afresh.
    let mut set = chaos.rules();
    set.rules[0].description = Some("changed".into());
    chaos.replace(set).unwrap();
    assert!(injects(&chaos, &server()));
    chaos.remove_rule("a").unwrap();
    assert_eq!(chaos.rules().rules.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn ramp_steps_the_rate_up_with_time() {
    let chaos = Chaos::builder().seed(1).build().unwrap();
    chaos
        .replace(yaml("rules:\n  - { id: r, point: server, fault: { abort: 503 }, ramp: { steps: [0%, 100%], every: 10s } }\n"))
        .unwrap();
    assert_eq!((0..100).filter(|_| injects(&chaos, &server())).count(), 0);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!((0..100).filter(|_| injects(&chaos, &server())).count(), 100);
}

#[test]
fn delays_are_capped_by_the_ceiling() {
    let chaos = Chaos::builder().seed(3).build().unwrap();
    chaos
        .replace(yaml("limits: { max_delay: 1s }\nrules:\n  - { id: tail, point: server, fault: { delay: { p50: 100ms, p99: 900ms } } }\n"))
        .unwrap();
    for _ in 0..2000 {
        let Decision::Inject(i) = chaos.decide(&server()) else {
            panic!()
        };
        assert!(i.delay().unwrap() <= Duration::from_secs(1));
    }
}

// ---- context from headers: trust, signatures, hops --------------------------------------------

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::try_from(*k).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn unsigned_directives_are_ignored_unless_allowed() {
    let chaos = Chaos::new();
    chaos.add_rule(abort("unrelated", "sql")).unwrap();
    let h = headers(&[("x-chaos", "scenario=s1, abort=503")]);
    let ctx = chaos.context_from_headers(&h).unwrap();
    assert!(!ctx.is_trusted());
    assert_eq!(ctx.scenarios(), ["s1"]);
    assert!(!injects(&chaos, &server().context(Some(&ctx))));
    assert_eq!(chaos.snapshot().stats.directives_refused, 1);

    chaos.replace(yaml("allow_directives: true\n")).unwrap();
    let ctx = chaos.context_from_headers(&h).unwrap();
    assert!(ctx.is_trusted());
    let Decision::Inject(i) = chaos.decide(&server().context(Some(&ctx))) else {
        panic!("directive ignored")
    };
    assert_eq!(i.rule_id(), "x-chaos");
    assert!(matches!(i.fault(), Fault::Abort(_)));
}

#[test]
fn bad_headers_are_ignored_and_counted() {
    let chaos = Chaos::new();
    assert!(chaos.context_from_headers(&HeaderMap::new()).is_none());
    let h = headers(&[
        ("x-chaos", "explode=1, scenario=ok, delay=1h"),
        ("x-test-traffic", "maybe"),
    ]);
    let ctx = chaos.context_from_headers(&h).unwrap();
    assert_eq!(ctx.scenarios(), ["ok"]);
    assert!(!ctx.is_test_traffic());
    assert_eq!(chaos.snapshot().stats.header_rejected, 3);
    let only_bad = headers(&[("x-chaos", "explode=1")]);
    assert!(chaos.context_from_headers(&only_bad).is_none());
    let tt = headers(&[("x-test-traffic", "1")]);
    assert!(chaos.context_from_headers(&tt).unwrap().is_test_traffic());
}

#[test]
fn signed_directives_accept_and_reject() {
    let keys = SigningKeys::new("current-key").with_previous("old-key");
    let chaos = Chaos::builder().signing_keys(keys).build().unwrap();
    assert!(
        chaos.is_armed(),
        "signed directives may arrive with no rules loaded"
    );
    let value = "abort=503;target=orders";
    let soon = SystemTime::now() + Duration::from_secs(600);
    let trusted = |sig: &str| {
        chaos
            .context_from_headers(&headers(&[("x-chaos", value), ("x-chaos-signature", sig)]))
            .is_some_and(|c| c.is_trusted())
    };
    assert!(
        trusted(&SigningKeys::new("current-key").sign(value, soon)),
        "current key"
    );
    assert!(
        trusted(&SigningKeys::new("old-key").sign(value, soon)),
        "rotated key"
    );
    assert!(
        !trusted(&SigningKeys::new("stranger").sign(value, soon)),
        "wrong key"
    );
    assert!(
        !trusted(&SigningKeys::new("current-key").sign("abort=500;target=orders", soon)),
        "bad mac"
    );
    let past = SystemTime::now() - Duration::from_secs(1);
    assert!(
        !trusted(&SigningKeys::new("current-key").sign(value, past)),
        "expired"
    );
    assert!(!trusted("t=1,v1=zz"), "malformed");
    assert_eq!(chaos.snapshot().stats.signature_rejected, 4);

    let ctx = chaos
        .context_from_headers(&headers(&[
            ("x-chaos", value),
            (
                "x-chaos-signature",
                &SigningKeys::new("current-key").sign(value, soon),
            ),
        ]))
        .unwrap();
    assert!(injects(
        &chaos,
        &RequestView::new(Point::Server, "orders").context(Some(&ctx))
    ));
    assert!(!injects(
        &chaos,
        &RequestView::new(Point::Server, "billing").context(Some(&ctx))
    ));
}

#[test]
fn hops_carry_signed_and_unsigned_contexts_as_far_as_asked() {
    // Unsigned, allowed: hops decrement in the value.
    let a = Chaos::builder()
        .rules(yaml("allow_directives: true\n"))
        .build()
        .unwrap();
    let ctx = a
        .context_from_headers(&headers(&[
            ("x-chaos", "abort=503;target=c;hops=2, delay=1s"),
            ("x-test-traffic", "1"),
        ]))
        .unwrap();
    assert_eq!(ctx.active_directives().count(), 2);
    let next = ctx.next_hop();
    assert_eq!(
        next.x_chaos.as_ref().unwrap(),
        "abort=503;target=c;hops=1",
        "the bare directive stops at the first hop"
    );
    assert_eq!(next.test_traffic.as_ref().unwrap(), "1");
    let b = a
        .context_from_headers(&headers(&[(
            "x-chaos",
            next.x_chaos.unwrap().to_str().unwrap(),
        )]))
        .unwrap();
    assert!(b.next_hop().x_chaos.is_none(), "spent at 0");

    // Signed: forwarded byte for byte with the hop counter in the signature header.
    let keys = SigningKeys::new("k");
    let svc = Chaos::builder().signing_keys(keys.clone()).build().unwrap();
    let value = "abort=503;hops=1";
    let sig = keys.sign(value, SystemTime::now() + Duration::from_secs(60));
    let first = svc
        .context_from_headers(&headers(&[("x-chaos", value), ("x-chaos-signature", &sig)]))
        .unwrap();
    assert!(injects(&svc, &server().context(Some(&first))));
    let next = first.next_hop();
    assert_eq!(next.x_chaos.as_ref().unwrap(), value);
    assert_eq!(
        next.signature.as_ref().unwrap().to_str().unwrap(),
        format!("{sig},h=1")
    );
    let second = svc
        .context_from_headers(&headers(&[
            ("x-chaos", value),
            (
                "x-chaos-signature",
                next.signature.unwrap().to_str().unwrap(),
            ),
        ]))
        .unwrap();
    assert!(second.is_trusted());
    assert!(
        !injects(&svc, &server().context(Some(&second))),
        "hops=1 must not fire at the second hop"
    );
}

// ---- task-local scope and test helpers --------------------------------------------------------

#[tokio::test]
async fn context_is_visible_deeper_in_the_request_and_in_spawned_tasks() {
    let chaos = Chaos::new();
    chaos
        .add_rule(
            Rule::new("q", "queue.publish", Fault::Error(ErrorKind::Unavailable))
                .with_match(Match::default().scenario("s9")),
        )
        .unwrap();
    let ctx = ChaosContext::builder().scenario("s9").build();
    let c2 = chaos.clone();
    let spawned = ctx
        .clone()
        .scope(async move {
            assert!(
                c2.inject("queue.publish", "", async {}).await.is_err(),
                "seen in the same task"
            );
            let handle = tokio::spawn(
                async move { c2.inject("queue.publish", "", async {}).await.is_err() }
                    .with_current_chaos_context(),
            );
            handle.await.unwrap()
        })
        .await;
    assert!(spawned, "carried into the spawned task");
    assert!(
        chaos.inject("queue.publish", "", async {}).await.is_ok(),
        "not outside the scope"
    );
}

#[tokio::test]
async fn rule_guards_scenarios_and_the_journal() {
    let chaos = Chaos::new();
    let (s1, s2) = (Scenario::fresh(), Scenario::fresh());
    assert_ne!(s1, s2);
    {
        let _g = chaos
            .install(
                Rule::new("cache-down", "cache", Fault::Error(ErrorKind::Unavailable))
                    .with_match(s1.matcher()),
            )
            .unwrap();
        assert!(
            s1.context()
                .scope(chaos.inject("cache", "users", async {}))
                .await
                .is_err()
        );
        assert!(
            s2.context()
                .scope(chaos.inject("cache", "users", async {}))
                .await
                .is_ok()
        );
        let j = chaos.journal_for(s1.name());
        assert_eq!(j.len(), 1);
        assert_eq!(
            (
                j[0].rule.as_str(),
                j[0].point.as_str(),
                j[0].target.as_str()
            ),
            ("cache-down", "cache", "users")
        );
        assert_eq!(j[0].fault, "error unavailable");
        assert!(chaos.journal_for(s2.name()).is_empty());
    }
    assert!(chaos.rules().rules.is_empty(), "guard removed its rule");
    chaos.clear_journal();
    assert!(chaos.journal().is_empty());
    assert_eq!(s1.header_value(), format!("scenario={}", s1.name()));
}

#[tokio::test(start_paused = true)]
async fn pause_points_hold_work_until_released() {
    let chaos = Chaos::new();
    let (_g, gate) = chaos
        .pause_point("hold-db", "sql", Some("orders"), Match::default())
        .unwrap();
    let c = chaos.clone();
    let held = tokio::spawn(async move { c.inject("sql", "orders", async { "ran" }).await });
    gate.wait_arrived(1).await;
    assert!(!held.is_finished());
    assert_eq!(
        chaos
            .inject("sql", "other", async { "free" })
            .await
            .unwrap(),
        "free"
    );
    gate.release();
    assert_eq!(held.await.unwrap().unwrap(), "ran");
    // Once released, later requests go through at once.
    assert_eq!(
        chaos
            .inject("sql", "orders", async { "again" })
            .await
            .unwrap(),
        "again"
    );
}

#[test]
fn the_path_index_never_hides_a_rule_that_matches() {
    let chaos = Chaos::new();
    chaos
        .replace(yaml(
            r#"
rules:
  - { id: exact, point: server, match: { path: /health }, fault: { abort: 501 } }
  - { id: root, point: server, match: { path: / }, fault: { abort: 502 } }
  - { id: partial-segment, point: server, match: { path: "/api*" }, fault: { abort: 503 } }
  - { id: anywhere, point: server, match: { path: "*checkout*" }, fault: { abort: 504 } }
  - { id: deep, point: server, match: { path: "/files/*/raw" }, fault: { abort: 505 } }
  - { id: one-char, point: server, match: { path: "/v?/items" }, fault: { abort: 506 } }
"#,
        ))
        .unwrap();
    let rule_for = |path: &str| match chaos.decide(&server().path(path)) {
        Decision::Inject(i) => Some(i.rule_id().to_owned()),
        Decision::Pass => None,
    };
    assert_eq!(rule_for("/health").as_deref(), Some("exact"));
    assert_eq!(rule_for("/healthz"), None);
    assert_eq!(rule_for("/").as_deref(), Some("root"));
    assert_eq!(rule_for("/apiv2/x").as_deref(), Some("partial-segment"));
    assert_eq!(rule_for("/api").as_deref(), Some("partial-segment"));
    assert_eq!(rule_for("/shop/checkout/1").as_deref(), Some("anywhere"));
    assert_eq!(rule_for("/files/a/raw").as_deref(), Some("deep"));
    assert_eq!(rule_for("/files/a/cooked"), None);
    assert_eq!(rule_for("/v1/items").as_deref(), Some("one-char"));
    // File order decides between rules from different lists.
    chaos
        .replace(yaml(
            "rules:\n  - { id: first, point: server, fault: { abort: 500 } }\n  - { id: second, point: server, match: { path: /x/* }, fault: { abort: 501 } }\n",
        ))
        .unwrap();
    assert_eq!(rule_for("/x/1").as_deref(), Some("first"));
}

/// A request tagged with many scenarios meets many candidate lists (more than the few a
/// request usually meets): every rule is still evaluated once, in file order.
#[test]
fn many_candidate_lists_are_merged_in_file_order() {
    let mut text = String::from("rules:\n");
    for k in (2..=7).rev() {
        text.push_str(&format!(
            "  - {{ id: quiet-s{k}, point: server, match: {{ scenario: s{k} }}, rate: 0%, fault: {{ abort: 500 }} }}\n"
        ));
    }
    text.push_str("  - { id: plain, point: server, match: { method: [GET] }, rate: 0%, fault: { abort: 500 } }\n");
    text.push_str(
        "  - { id: loud-s1, point: server, match: { scenario: s1 }, fault: { abort: 503 } }\n",
    );
    text.push_str(
        "  - { id: later-s2, point: server, match: { scenario: s2 }, fault: { abort: 502 } }\n",
    );
    for tags in ["s1, s2, s3", "scenario=s7", "s1, s2, s3, s4, s5, s6, s7"] {
        let chaos = Chaos::new();
        chaos.replace(yaml(&text)).unwrap();
        let header = if tags.starts_with("scenario=") {
            tags.to_owned()
        } else {
            tags.split(", ")
                .map(|t| format!("scenario={t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut h = HeaderMap::new();
        h.insert("x-chaos", HeaderValue::try_from(header.as_str()).unwrap());
        let ctx = chaos.context_from_headers(&h);
        let view = server().method(&Method::GET).context(ctx.as_ref());
        let got = match chaos.decide(&view) {
            Decision::Inject(i) => Some(i.rule_id().to_owned()),
            Decision::Pass => None,
        };
        let tagged: Vec<&str> = header.split(", ").map(|t| &t[9..]).collect();
        let expect = tagged.contains(&"s1").then_some("loud-s1");
        assert_eq!(got.as_deref(), expect, "{header}");
        for r in chaos.snapshot().rules {
            let evaluated = match r.rule.id.strip_prefix("quiet-") {
                Some(s) => tagged.contains(&s),
                None => r.rule.id == "plain" || (r.rule.id == "loud-s1" && expect.is_some()),
            };
            assert_eq!(
                r.counters.matched,
                u64::from(evaluated),
                "{header}: {}",
                r.rule.id
            );
        }
    }
}

/// Contexts of tagged requests are kept by the bytes of their headers, and what the cache
/// gives back is what a parse would: the same tags, mark and next hop. What is refused is
/// never kept (each refusal is counted every time), directives are never kept (their
/// trust is judged per request), and a reload judges headers by its own limits.
#[test]
fn tagged_contexts_come_back_from_the_cache_as_parsed() {
    let headers = |pairs: &[(&'static str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::try_from(*v).unwrap());
        }
        h
    };
    let chaos = Chaos::new();
    let tagged = headers(&[
        ("x-chaos", "scenario=a, scenario=b"),
        ("x-test-traffic", "1"),
    ]);
    let first = chaos.context_from_headers(&tagged).unwrap();
    let again = chaos.context_from_headers(&tagged).unwrap();
    assert_eq!(again.scenarios(), ["a", "b"]);
    assert!(again.is_test_traffic() && !again.is_trusted());
    assert_eq!(again, first);
    let built = ChaosContext::builder()
        .scenario("a")
        .scenario("b")
        .test_traffic(true)
        .build();
    assert_eq!(again.next_hop(), built.next_hop());
    let mut out = HeaderMap::new();
    again.forward_to(&mut out);
    assert_eq!(out["x-chaos"], "scenario=a, scenario=b");
    assert_eq!(out["x-test-traffic"], "1");
    // Same x-chaos, different mark: a different context.
    let unmarked = chaos
        .context_from_headers(&headers(&[("x-chaos", "scenario=a, scenario=b")]))
        .unwrap();
    assert!(!unmarked.is_test_traffic());
    assert!(
        chaos
            .context_from_headers(&headers(&[("x-test-traffic", "0")]))
            .is_none()
    );
    assert!(
        chaos
            .context_from_headers(&headers(&[("x-test-traffic", "0")]))
            .is_none()
    );

    // Refused items are counted on every request.
    let bad = headers(&[("x-chaos", "scenario=ok, scenario=no spaces")]);
    for _ in 0..3 {
        assert_eq!(
            chaos.context_from_headers(&bad).unwrap().scenarios(),
            ["ok"]
        );
    }
    assert_eq!(chaos.snapshot().stats.header_rejected, 3);
    let bad_mark = headers(&[("x-test-traffic", "maybe")]);
    for _ in 0..2 {
        assert!(chaos.context_from_headers(&bad_mark).is_none());
    }
    assert_eq!(chaos.snapshot().stats.header_rejected, 5);
    // Directives: refused, and counted, on every request.
    let directive = headers(&[("x-chaos", "scenario=a, abort=503")]);
    for _ in 0..2 {
        let ctx = chaos.context_from_headers(&directive).unwrap();
        assert!(!ctx.is_trusted());
    }
    assert_eq!(chaos.snapshot().stats.directives_refused, 2);

    // A reload brings its own limits: a header kept under the old ones is judged anew.
    let long = format!("scenario={}", "x".repeat(60));
    let long = headers(&[("x-chaos", long.as_str())]);
    assert!(chaos.context_from_headers(&long).is_some());
    assert!(chaos.context_from_headers(&long).is_some());
    chaos
        .replace(yaml("limits: { max_header_bytes: 32 }\nrules: []"))
        .unwrap();
    assert!(chaos.context_from_headers(&long).is_none());
    assert_eq!(chaos.snapshot().stats.header_rejected, 6);
}

/// The same rule installed by two tests at once: a fixed id is refused the second time;
/// scoped to each test's scenario, both go in, and each sees only its own fault.
#[tokio::test]
async fn a_rule_scoped_to_a_scenario_can_be_installed_by_parallel_tests() {
    let chaos = Chaos::new();
    let down = || {
        Rule::new(
            "cache-down",
            "cache.get",
            Fault::Error(ErrorKind::Unavailable),
        )
    };
    let _fixed = chaos.install(down()).unwrap();
    let err = chaos.install(down()).unwrap_err();
    assert!(err.to_string().contains("duplicate rule id"), "{err}");
    drop(_fixed);

    let (a, b) = (Scenario::fresh(), Scenario::fresh());
    let guard_a = a.install(&chaos, down()).unwrap();
    let _guard_b = b.install(&chaos, down()).unwrap();
    assert_eq!(guard_a.id(), format!("cache-down.{}", a.name()));
    let call = |s: &Scenario| {
        s.context()
            .scope(chaos.inject("cache.get", "users", async { 1 }))
    };
    assert!(call(&a).await.is_err());
    assert!(call(&b).await.is_err());
    assert_eq!(
        chaos
            .inject("cache.get", "users", async { 1 })
            .await
            .unwrap(),
        1
    );
    drop(guard_a);
    assert_eq!(call(&a).await.unwrap(), 1, "a's rule went with its guard");
    assert!(call(&b).await.is_err(), "b's stays");
    assert_eq!(chaos.journal_for(a.name()).len(), 1);
    assert_eq!(chaos.journal_for(b.name()).len(), 2);
}
