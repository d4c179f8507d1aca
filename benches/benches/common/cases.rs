//! The layer bench's cases, shared by `benches/layer.rs` and the instruction-count
//! harness (`examples/icount.rs`): the realistic request, the rules, the bare service and
//! every layered variant, by name.

#![allow(dead_code)]

use std::hint::black_box;

use axum::body::Body;
use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::ChaosLayer;
use http::{HeaderValue, Request, Response, header::HOST};
use tower::{Service, service_fn};
use tower_layer::Layer;

pub(crate) type Err = std::io::Error;

/// How a case's request is tagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// Not at all: the request every service serves.
    None,
    /// `x-chaos: scenario=…`, as a test or a GameDay tags its traffic.
    XChaos,
    /// The same as a `chaos` member of the request's own `baggage`, as a service in an
    /// OpenTelemetry fleet receives it (read with the `otel` feature).
    Baggage,
}

pub(crate) fn realistic(tag: Tag) -> Request<()> {
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
    match tag {
        Tag::None => {}
        Tag::XChaos => {
            req.headers_mut().insert(
                "x-chaos",
                HeaderValue::from_static("scenario=some-other-test"),
            );
        }
        Tag::Baggage => {
            req.headers_mut().insert(
                "baggage",
                HeaderValue::from_static("user=1,tenant=acme,chaos=scenario%3Dsome-other-test"),
            );
        }
    }
    req
}

/// A hundred rules, none of which matches the request.
pub(crate) fn hundred_rules() -> RuleSet {
    rules_none_matching(100)
}

/// `n` rules of four shapes (path and method, scenario, target, header), none of which
/// matches the request.
pub(crate) fn rules_none_matching(n: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
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

pub(crate) fn engine(set: RuleSet) -> Chaos {
    let chaos = Chaos::new();
    chaos.replace(set).unwrap();
    // One organic request in 1,000 timed, as the adaptive sample does at 200,000
    // requests a second: the same work on every run of a bench (the adaptive stride
    // needs a second of traffic first, and under valgrind follows the slowed rate).
    chaos.pin_organic_sample(1000);
    chaos
}

pub(crate) fn bare()
-> impl Service<Request<()>, Response = Response<Body>, Error = Err, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<()>| async move {
        black_box(&req);
        Ok::<_, Err>(Response::new(Body::empty()))
    })
}

/// What is done with each case.
pub(crate) trait Visit {
    fn case<S>(&mut self, name: &str, svc: S, tag: Tag)
    where
        S: Service<Request<()>, Response = Response<Body>, Error = Err> + Clone;
}

/// Every case, in order: the bare service first (the baseline).
pub(crate) fn all(v: &mut impl Visit) {
    v.case("baseline_bare", bare(), Tag::None);

    // `build()`: the service holds its settings by reference count (one atomic increment
    // per clone); `build_static()`: by a `&'static` (a pointer copy).
    let empty = Chaos::new();
    v.case("no_rules", ChaosLayer::new(&empty).layer(bare()), Tag::None);
    v.case(
        "no_rules_static",
        ChaosLayer::builder(&empty).build_static().layer(bare()),
        Tag::None,
    );

    let hundred = engine(hundred_rules());
    let layer = ChaosLayer::builder(&hundred).target("orders").build();
    v.case("rules_100_no_match", layer.layer(bare()), Tag::None);
    let leaked = ChaosLayer::builder(&hundred)
        .target("orders")
        .build_static();
    v.case("rules_100_no_match_static", leaked.layer(bare()), Tag::None);
    v.case(
        "rules_100_no_match_x_chaos",
        layer.layer(bare()),
        Tag::XChaos,
    );
    // The same tag in `baggage`, which an armed engine reads with the `otel` feature.
    v.case(
        "rules_100_no_match_baggage",
        layer.layer(bare()),
        Tag::Baggage,
    );
    // Untagged traffic with no rules, but a request tagged by a test or a GameDay.
    v.case(
        "no_rules_x_chaos",
        ChaosLayer::new(&empty).layer(bare()),
        Tag::XChaos,
    );

    // The index: a thousand rules cost what a hundred do.
    let thousand = engine(rules_none_matching(1000));
    let layer = ChaosLayer::builder(&thousand).target("orders").build();
    v.case("rules_1000_no_match", layer.layer(bare()), Tag::None);
    v.case(
        "rules_1000_no_match_x_chaos",
        layer.layer(bare()),
        Tag::XChaos,
    );

    let delay0 = engine(
        RuleSet::parse(
            Format::Yaml,
            "rules: [{ id: d0, point: server, fault: { delay: 0ms } }]",
        )
        .unwrap(),
    );
    v.case(
        "match_delay_0",
        ChaosLayer::new(&delay0).layer(bare()),
        Tag::None,
    );
    v.case(
        "match_delay_0_static",
        ChaosLayer::builder(&delay0).build_static().layer(bare()),
        Tag::None,
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
    v.case(
        "match_rate_0_control",
        ChaosLayer::new(&control).layer(bare()),
        Tag::None,
    );

    let peer = tower_resilience_chaos::ChaosLayer::builder()
        .name("peer")
        .error_rate(0.0)
        .error_fn(|_req: &Request<()>| std::io::Error::other("chaos"))
        .latency_rate(0.0)
        .build();
    v.case(
        "tower_resilience_chaos_rate_0",
        peer.layer(bare()),
        Tag::None,
    );

    // The floor: a layer that does nothing (tower's `MapRequest` with the identity).
    let identity = tower::util::MapRequestLayer::new(|r: Request<()>| r);
    v.case(
        "tower_map_request_identity",
        identity.layer(bare()),
        Tag::None,
    );

    // What propagation alone costs a tower-http user: one header copied to the response.
    let propagate = tower_http::propagate_header::PropagateHeaderLayer::new(
        http::HeaderName::from_static("x-request-id"),
    );
    v.case(
        "tower_http_propagate_header",
        propagate.layer(bare()),
        Tag::None,
    );

    let set_header = tower_http::set_header::SetRequestHeaderLayer::if_not_present(
        HOST,
        HeaderValue::from_static("fallback.internal"),
    );
    v.case(
        "tower_http_set_request_header",
        set_header.layer(bare()),
        Tag::None,
    );
}
