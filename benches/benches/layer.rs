//! The server layer against a bare service, a peer chaos layer and a tower-http layer, in
//! one criterion run, printed as ratios to the bare service.
//!
//! Every variant gets the same realistic request (13 headers), moved in by value, and is
//! driven the way `axum::serve` drives a service: clone the service, `oneshot` it, await
//! the response on a current-thread tokio runtime. The layer is measured both ways a
//! service can hold its settings: `build()` (a reference count, one atomic increment per
//! clone) and `build_static()` (a pointer copy).
//!
//! Run with `cargo bench -p chaos-benches`.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::ChaosLayer;
use criterion::{BatchSize, Criterion, criterion_group};
use http::{HeaderValue, Request, Response, header::HOST};
use tower::{Service, ServiceExt, service_fn};
use tower_layer::Layer;

type Err = std::io::Error;

fn realistic(x_chaos: bool) -> Request<()> {
    let mut req = Request::get("/api/v1/orders/123").body(()).unwrap();
    for (k, v) in [
        ("host", "orders.internal"),
        ("user-agent", "svc/1.0 (+https://example.invalid)"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("accept-language", "en"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=abc"),
        ("baggage", "user=1,tenant=acme"),
        ("content-type", "application/json"),
        ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
        ("x-request-id", "7b0c1d9e"),
        ("x-forwarded-for", "10.0.0.1"),
        ("cookie", "session=abc"),
    ] {
        req.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    if x_chaos {
        req.headers_mut().insert(
            "x-chaos",
            HeaderValue::from_static("scenario=some-other-test"),
        );
    }
    req
}

/// A hundred rules, none of which matches the request.
fn hundred_rules() -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..100 {
        let extra = match i % 4 {
            0 => format!("match: {{ path: /svc{i}/*, method: POST }}"),
            1 => format!("match: {{ scenario: gameday-{i} }}"),
            2 => format!("target: svc{i}"),
            _ => format!("match: {{ headers: {{ x-tenant: tenant-{i} }} }}"),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: server\n    fault: {{ abort: 503 }}\n    {extra}\n"
        ));
    }
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

fn engine(set: RuleSet) -> Chaos {
    let chaos = Chaos::new();
    chaos.replace(set).unwrap();
    chaos
}

fn bare() -> impl Service<Request<()>, Response = Response<Body>, Error = Err, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<()>| async move {
        black_box(&req);
        Ok::<_, Err>(Response::new(Body::empty()))
    })
}

fn bench<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, svc: S, x_chaos: bool)
where
    S: Service<Request<()>, Response = Response<Body>, Error = Err> + Clone,
{
    let req = realistic(x_chaos);
    c.bench_function(&format!("layer/{name}"), |b| {
        b.to_async(rt).iter_batched(
            || req.clone(),
            |req| {
                let svc = svc.clone();
                async move { black_box(svc.oneshot(req).await.unwrap()) }
            },
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    bench(c, &rt, "baseline_bare", bare(), false);

    // `build()`: the service holds its settings by reference count (one atomic increment
    // per clone); `build_static()`: by a `&'static` (a pointer copy).
    let empty = Chaos::new();
    bench(
        c,
        &rt,
        "no_rules",
        ChaosLayer::new(&empty).layer(bare()),
        false,
    );
    bench(
        c,
        &rt,
        "no_rules_static",
        ChaosLayer::builder(&empty).build_static().layer(bare()),
        false,
    );

    let hundred = engine(hundred_rules());
    let layer = ChaosLayer::builder(&hundred).target("orders").build();
    bench(c, &rt, "rules_100_no_match", layer.layer(bare()), false);
    let leaked = ChaosLayer::builder(&hundred)
        .target("orders")
        .build_static();
    bench(
        c,
        &rt,
        "rules_100_no_match_static",
        leaked.layer(bare()),
        false,
    );
    bench(
        c,
        &rt,
        "rules_100_no_match_x_chaos",
        layer.layer(bare()),
        true,
    );

    let delay0 = engine(
        RuleSet::parse(
            Format::Yaml,
            "rules: [{ id: d0, point: server, fault: { delay: 0ms } }]",
        )
        .unwrap(),
    );
    bench(
        c,
        &rt,
        "match_delay_0",
        ChaosLayer::new(&delay0).layer(bare()),
        false,
    );
    bench(
        c,
        &rt,
        "match_delay_0_static",
        ChaosLayer::builder(&delay0).build_static().layer(bare()),
        false,
    );

    // Matched at rate 0: nothing injected, the request counted in the rule's control
    // cohort, its outcome recorded there (the cost of cohorts on a matched request).
    let control = engine(
        RuleSet::parse(
            Format::Yaml,
            "rules: [{ id: c0, point: server, fault: { delay: 0ms }, rate: 0% }]",
        )
        .unwrap(),
    );
    bench(
        c,
        &rt,
        "match_rate_0_control",
        ChaosLayer::new(&control).layer(bare()),
        false,
    );

    let peer = tower_resilience_chaos::ChaosLayer::builder()
        .name("peer")
        .error_rate(0.0)
        .error_fn(|_req: &Request<()>| std::io::Error::other("chaos"))
        .latency_rate(0.0)
        .build();
    bench(
        c,
        &rt,
        "tower_resilience_chaos_rate_0",
        peer.layer(bare()),
        false,
    );

    let set_header = tower_http::set_header::SetRequestHeaderLayer::if_not_present(
        HOST,
        HeaderValue::from_static("fallback.internal"),
    );
    bench(
        c,
        &rt,
        "tower_http_set_request_header",
        set_header.layer(bare()),
        false,
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    common::print_ratios(
        "layer",
        &[
            "baseline_bare",
            "no_rules",
            "no_rules_static",
            "rules_100_no_match",
            "rules_100_no_match_static",
            "rules_100_no_match_x_chaos",
            "match_delay_0",
            "match_delay_0_static",
            "match_rate_0_control",
            "tower_resilience_chaos_rate_0",
            "tower_http_set_request_header",
        ],
    );
}
