//! The path that matches nothing allocates nothing: counted with a global allocator that
//! records every allocation of this test binary. A plain program, not a libtest harness,
//! so nothing else in the process allocates meanwhile.

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext, Point, RequestView};
use http::{HeaderMap, HeaderValue, Method};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn hundred_rules() -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..100 {
        let (point, extra) = match i % 4 {
            0 => (
                "server",
                format!("match: {{ path: /svc{i}/*, method: POST }}"),
            ),
            1 => ("client", format!("target: dep{i}")),
            2 => ("server", format!("match: {{ scenario: gameday-{i} }}")),
            _ => (
                "server",
                format!("match: {{ headers: {{ x-tenant: tenant-{i} }} }}"),
            ),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: {point}\n    fault: {{ abort: 503 }}\n    {extra}\n"
        ));
    }
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

fn realistic_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "orders.internal"),
        ("user-agent", "svc/1.0"),
        ("accept", "application/json"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("x-tenant", "tenant-unmatched"),
        ("x-request-id", "7b0c1d"),
        ("authorization", "Bearer abc.def.ghi"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn allocations(mut f: impl FnMut()) -> usize {
    for _ in 0..100 {
        f(); // warm up: lazy statics, thread-locals
    }
    let reg = Region::new(GLOBAL);
    for _ in 0..10_000 {
        f();
    }
    reg.change().allocations
}

fn the_no_match_decision_allocates_nothing() {
    // The counter works: a boxed value is counted.
    assert!(allocations(|| drop(std::hint::black_box(Box::new(1u64)))) >= 10_000);

    let empty = Chaos::new();
    let chaos = Chaos::new();
    chaos.replace(hundred_rules()).unwrap();
    let headers = realistic_headers();
    let ctx = ChaosContext::builder()
        .scenario("some-other-test")
        .test_traffic(true)
        .build();
    let method = Method::GET;

    let view = RequestView::new(Point::Server, "orders")
        .method(&method)
        .path("/api/v1/orders/123")
        .headers(&headers);
    assert_eq!(
        allocations(|| assert!(!empty.decide(&view).is_inject())),
        0,
        "empty engine"
    );
    assert_eq!(
        allocations(|| assert!(!chaos.decide(&view).is_inject())),
        0,
        "100 rules, no context"
    );
    let with_ctx = view.context(Some(&ctx));
    assert_eq!(
        allocations(|| assert!(!chaos.decide(&with_ctx).is_inject())),
        0,
        "100 rules, a scenario that selects none"
    );
    let client = RequestView::new(Point::Client, "payments").context(Some(&ctx));
    assert_eq!(
        allocations(|| assert!(!chaos.decide(&client).is_inject())),
        0,
        "client point, unknown target"
    );

    // Reading headers that carry no chaos header builds no context.
    assert_eq!(
        allocations(|| assert!(chaos.context_from_headers(&headers).is_none())),
        0,
        "no chaos headers"
    );

    // The generic injection point: the future is neither boxed nor allocating.
    let mut cx = Context::from_waker(Waker::noop());
    let n = allocations(|| {
        let fut = pin!(chaos.inject("queue.publish", "orders", async { 7 }));
        assert!(matches!(fut.poll(&mut cx), Poll::Ready(Ok(7))));
    });
    assert_eq!(n, 0, "Chaos::inject pass-through");
}

/// Run as a plain program (`harness = false` in the manifest): nothing but this thread is
/// in the process to allocate while it counts.
fn main() {
    the_no_match_decision_allocates_nothing();
    println!("zero_alloc: the no match decision allocates nothing: ok");
}
