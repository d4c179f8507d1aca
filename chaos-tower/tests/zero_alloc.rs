//! A request that nothing is injected into costs the server and client layers no heap
//! allocation: counted with a global allocator that records every allocation of this test
//! binary, against the same service without the layer. A plain program, not a libtest
//! harness, so nothing else in the process allocates meanwhile.

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::{ChaosClientLayer, ChaosLayer};
use http::{HeaderValue, Request, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Body = axum::body::Body;

fn hundred_rules() -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..100 {
        let extra = match i % 3 {
            0 => format!("match: {{ path: /svc{i}/*, method: POST }}"),
            1 => format!("match: {{ scenario: gameday-{i} }}"),
            _ => format!("match: {{ headers: {{ x-tenant: tenant-{i} }} }}"),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: server\n    fault: {{ abort: 503 }}\n    {extra}\n"
        ));
    }
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

fn realistic() -> Request<()> {
    let mut req = Request::get("/api/v1/orders/123").body(()).unwrap();
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
        // Someone else's baggage: read (feature `otel`, on in these tests), not ours.
        ("baggage", "user=1,tenant=acme"),
    ] {
        req.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    req
}

/// `realistic()`, tagged the way a test or a GameDay tags its traffic.
fn tagged() -> Request<()> {
    let mut req = realistic();
    req.headers_mut().insert(
        "x-chaos",
        HeaderValue::from_static("scenario=checkout-test"),
    );
    req
}

/// `realistic()`, marked as synthetic traffic.
fn test_traffic() -> Request<()> {
    let mut req = realistic();
    req.headers_mut()
        .insert("x-test-traffic", HeaderValue::from_static("1"));
    req
}

/// `tagged()` and `test_traffic()` at once.
fn tagged_test_traffic() -> Request<()> {
    let mut req = tagged();
    req.headers_mut()
        .insert("x-test-traffic", HeaderValue::from_static("1"));
    req
}

/// `tagged_test_traffic()` as a service in an OpenTelemetry fleet receives it: the tag and
/// the mark as members of the request's own `baggage`, no chaos headers.
fn baggage_tagged() -> Request<()> {
    let mut req = realistic();
    req.headers_mut().insert(
        "baggage",
        HeaderValue::from_static(
            "user=1,tenant=acme,chaos=scenario%3Dcheckout-test;p=1,test-traffic=1",
        ),
    );
    req
}

/// A service that makes an outbound call through `client` per request, as a handler
/// calling a dependency does: the context the server layer put in scope is forwarded.
#[derive(Clone)]
struct Calls<C>(C);

impl<C, B> Service<Request<()>> for Calls<C>
where
    C: Service<Request<()>, Response = Response<B>> + Clone,
    C::Error: std::fmt::Debug,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        let mut out = Request::get("http://payments.internal/charge")
            .body(())
            .unwrap();
        // Room for what is forwarded, as a client that sets a few headers of its own has.
        out.headers_mut().reserve(16);
        out.headers_mut()
            .insert("accept", HeaderValue::from_static("application/json"));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(self.0.poll_ready(&mut cx).is_ready());
        let fut = pin!(self.0.call(out));
        match fut.poll(&mut cx) {
            Poll::Ready(r) => drop(r.unwrap()),
            Poll::Pending => panic!("the test client is always ready"),
        }
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// Allocations made by 5 000 calls of `svc` (requests built beforehand).
fn allocations<S, B>(svc: &mut S, make: fn() -> Request<()>) -> usize
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |svc: &mut S, req| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let fut = pin!(svc.call(req));
        match fut.poll(&mut cx) {
            Poll::Ready(r) => drop(r.unwrap()),
            Poll::Pending => panic!("the test service is always ready"),
        }
    };
    for _ in 0..100 {
        call(svc, make());
    }
    let reqs: Vec<_> = (0..5_000).map(|_| make()).collect();
    let reg = Region::new(GLOBAL);
    for req in reqs {
        call(svc, req);
    }
    reg.change().allocations
}

fn pass_through_adds_no_allocation() {
    let bare = || {
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(Body::empty())) })
    };
    let trivial = || Request::new(());
    let baseline_trivial = allocations(&mut bare(), trivial);
    let baseline_realistic = allocations(&mut bare(), realistic);

    let empty = Chaos::new();
    let mut svc = ChaosLayer::new(&empty).layer(bare());
    assert_eq!(
        allocations(&mut svc, trivial),
        baseline_trivial,
        "no rules, trivial request"
    );
    assert_eq!(
        allocations(&mut svc, realistic),
        baseline_realistic,
        "no rules, realistic request"
    );

    let chaos = Chaos::new();
    chaos.replace(hundred_rules()).unwrap();
    let mut svc = ChaosLayer::builder(&chaos)
        .target("orders")
        .build()
        .layer(bare());
    assert_eq!(
        allocations(&mut svc, trivial),
        baseline_trivial,
        "100 rules, trivial request"
    );
    assert_eq!(
        allocations(&mut svc, realistic),
        baseline_realistic,
        "100 rules, realistic request"
    );
    assert!(
        chaos
            .snapshot()
            .rules
            .iter()
            .all(|r| r.counters.injected == 0)
    );

    let mut client = ChaosClientLayer::new(&chaos, "payments").layer(bare());
    assert_eq!(
        allocations(&mut client, realistic),
        baseline_realistic,
        "client layer, 100 rules"
    );

    // Tagged requests: the context comes from the cache (made by the warm-up calls), so
    // parsing, looking up the scenario and running the handler in its scope allocate
    // nothing, with or without rules; tagged in `baggage` too (read while rules exist).
    for (name, make) in [
        ("scenario tag", tagged as fn() -> Request<()>),
        ("test traffic", test_traffic),
        ("both", tagged_test_traffic),
        ("baggage members", baggage_tagged),
    ] {
        let baseline = allocations(&mut bare(), make);
        for (rules, engine) in [("no rules", &empty), ("100 rules", &chaos)] {
            let mut svc = ChaosLayer::builder(engine)
                .target("orders")
                .build()
                .layer(bare());
            assert_eq!(
                allocations(&mut svc, make),
                baseline,
                "{rules}, request with {name}"
            );
        }
    }
    assert!(
        chaos
            .snapshot()
            .rules
            .iter()
            .all(|r| r.counters.injected == 0)
    );

    // Carrying the context on: a handler's outbound call through the client layer
    // forwards the tagged request's context (x-chaos, x-test-traffic and, with the otel
    // feature, baggage) without allocating.
    let outbound = |engine: &Chaos, layered: bool, make: fn() -> Request<()>| {
        let calls = Calls(ChaosClientLayer::new(engine, "payments").layer(bare()));
        if layered {
            allocations(&mut ChaosLayer::new(engine).layer(calls), make)
        } else {
            allocations(&mut Calls(bare()), make)
        }
    };
    for (name, make) in [
        ("headers", tagged_test_traffic as fn() -> Request<()>),
        ("baggage members", baggage_tagged),
    ] {
        let baseline = outbound(&empty, false, make);
        assert_eq!(
            outbound(&empty, true, make),
            baseline,
            "forwarded from {name}, no rules"
        );
        assert_eq!(
            outbound(&chaos, true, make),
            baseline,
            "forwarded from {name}, 100 rules"
        );
    }

    // The counter works: a layer that injects is counted.
    let abort = Chaos::new();
    abort
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules: [{ id: a, point: server, fault: { abort: 503 } }]",
            )
            .unwrap(),
        )
        .unwrap();
    let mut svc = ChaosLayer::new(&abort).layer(bare());
    assert!(allocations(&mut svc, trivial) > baseline_trivial);
}

/// Run as a plain program (`harness = false` in the manifest): nothing but this thread is
/// in the process to allocate while it counts.
fn main() {
    pass_through_adds_no_allocation();
    println!("zero_alloc: pass through adds no allocation: ok");
}
