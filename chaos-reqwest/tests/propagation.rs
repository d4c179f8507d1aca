//! The chaos context across hops: test → service A (chaos-tower) → reqwest with the chaos
//! middleware → service B (chaos-tower). Each service has its own engine, as two
//! processes would.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext};
use chaos_tower::ChaosLayer;
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;
use support::{Hits, client, dependency, dependency_at, engine, reqwest_client, serve};

const ALLOW: &str = "allow_directives: true\nrules: []";
const DENY: &str = "rules: []";

/// Service A: `GET /call?path=P` calls B at P and reports B's status and body.
async fn service_a(chaos: &Chaos, b: SocketAddr) -> SocketAddr {
    let c = client(chaos, "b");
    let router = Router::new()
        .route(
            "/call/{*path}",
            get(
                |State((c, b)): State<(ClientWithMiddleware, SocketAddr)>,
                 axum::extract::Path(path): axum::extract::Path<String>| async move {
                    let res = c.get(format!("http://{b}/{path}")).send().await.unwrap();
                    let status = res.status().as_u16();
                    let body = res.text().await.unwrap();
                    Json(serde_json::json!({ "status": status, "body": body }))
                },
            ),
        )
        .with_state((c, b));
    let layer = ChaosLayer::builder(chaos).target("a").build();
    serve(router, Some(layer)).await
}

/// Service B: the dependency behind its own server layer, target `b`.
async fn service_b(chaos: &Chaos) -> (SocketAddr, Hits) {
    let hits = Hits::default();
    let layer = ChaosLayer::builder(chaos).target("b").build();
    (serve(dependency(hits.clone()), Some(layer)).await, hits)
}

/// Calls A, which calls B at `path`; gives what A reports of B.
async fn through_a(a: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest_client().get(format!("http://{a}/call{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let v: Value = req.send().await.unwrap().json().await.unwrap();
    (
        v["status"].as_u64().unwrap() as u16,
        v["body"].as_str().unwrap().to_owned(),
    )
}

fn seen(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn a_directive_for_bs_server_fires_only_at_b() {
    let (chaos_a, chaos_b) = (engine(ALLOW), engine(ALLOW));
    let (b, hits) = service_b(&chaos_b).await;
    let a = service_a(&chaos_a, b).await;
    let directive = [("x-chaos", "abort=418;point=server;target=b")];
    let (status, _) = through_a(a, "/hello", &directive).await;
    assert_eq!(status, 418, "B's server point answers");
    assert_eq!(hits.get(), 0, "the abort came before B's handler");
    // A's own server and client points were not touched: A answered, and B was called.
    assert_eq!(chaos_a.snapshot().stats.injected, 0);
    assert_eq!(chaos_b.snapshot().stats.injected, 1);
}

#[tokio::test]
async fn hops_stop_a_directive_where_they_should() {
    let (chaos_a, chaos_b) = (engine(ALLOW), engine(ALLOW));
    let (b, _) = service_b(&chaos_b).await;
    let a = service_a(&chaos_a, b).await;
    // hops=1: this service only. A forwards nothing of it.
    let (status, body) = through_a(
        a,
        "/headers",
        &[(
            "x-chaos",
            "scenario=s1, abort=418;point=server;target=b;hops=1",
        )],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&body)["x-chaos"], "scenario=s1");
    // hops=2: A and the next hop.
    let (status, _) = through_a(
        a,
        "/headers",
        &[("x-chaos", "abort=418;point=server;target=b;hops=2")],
    )
    .await;
    assert_eq!(status, 418);
    // hops=3 reaches B with one hop left.
    let (status, body) = through_a(
        a,
        "/headers",
        &[("x-chaos", "delay=1ms;point=server;target=b;hops=3")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        seen(&body)["x-chaos"],
        "delay=1ms;point=server;target=b;hops=2"
    );
}

#[tokio::test]
async fn test_traffic_and_scenarios_arrive_at_b() {
    let (chaos_a, chaos_b) = (engine(DENY), engine(DENY));
    let (b, _) = service_b(&chaos_b).await;
    let a = service_a(&chaos_a, b).await;
    let (status, body) = through_a(
        a,
        "/headers",
        &[("x-chaos", "scenario=gameday-7"), ("x-test-traffic", "1")],
    )
    .await;
    assert_eq!(status, 200);
    let seen = seen(&body);
    assert_eq!(seen["x-chaos"], "scenario=gameday-7");
    assert_eq!(seen["x-test-traffic"], "1");
}

#[tokio::test]
async fn an_untrusted_directive_is_never_forwarded() {
    // A refuses unsigned directives; B would obey them. B must not see one.
    let (chaos_a, chaos_b) = (engine(DENY), engine(ALLOW));
    let (b, hits) = service_b(&chaos_b).await;
    let a = service_a(&chaos_a, b).await;
    let (status, body) = through_a(
        a,
        "/headers",
        &[("x-chaos", "scenario=s1, abort=418;point=server;target=b")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&body)["x-chaos"], "scenario=s1");
    assert_eq!(hits.get(), 1);
    assert_eq!(chaos_b.snapshot().stats.injected, 0);
}

#[tokio::test]
async fn a_signed_directive_travels_verbatim_with_its_hop_count() {
    let keys = SigningKeys::new(b"a shared secret of at least 32 bytes!!");
    let build = || {
        let chaos = Chaos::builder().signing_keys(keys.clone()).build().unwrap();
        chaos
            .replace(RuleSet::parse(Format::Yaml, DENY).unwrap())
            .unwrap();
        chaos
    };
    let (chaos_a, chaos_b) = (build(), build());
    let (b, _) = service_b(&chaos_b).await;
    let a = service_a(&chaos_a, b).await;
    let value = "abort=418;point=server;target=b";
    let sig = keys.sign(value, SystemTime::now() + Duration::from_secs(60));
    let (status, _) = through_a(
        a,
        "/hello",
        &[("x-chaos", value), ("x-chaos-signature", &sig)],
    )
    .await;
    assert_eq!(status, 418);
    // B receives the value byte for byte, and the signature with the hop taken.
    let value = "delay=1ms;point=server;target=b";
    let sig = keys.sign(value, SystemTime::now() + Duration::from_secs(60));
    let (_, body) = through_a(
        a,
        "/headers",
        &[("x-chaos", value), ("x-chaos-signature", &sig)],
    )
    .await;
    let seen = seen(&body);
    assert_eq!(seen["x-chaos"], value);
    assert_eq!(seen["x-chaos-signature"], format!("{sig},h=1"));
    // Forged: B never sees a trusted directive.
    let (status, _) = through_a(
        a,
        "/hello",
        &[
            ("x-chaos", "abort=418;point=server;target=b;rate=100%"),
            ("x-chaos-signature", &sig),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn context_comes_from_extensions_then_the_task_then_baggage() {
    let chaos = engine(ALLOW);
    let (dep, _) = dependency_at().await;
    let c = client(&chaos, "dep");
    let url = format!("http://{dep}/headers");
    let x_chaos = |body: Value| body["x-chaos"].as_str().map(str::to_owned);
    let get = |req: reqwest_middleware::RequestBuilder| async move {
        req.send().await.unwrap().json::<Value>().await.unwrap()
    };

    let task = ChaosContext::builder().scenario("from-task").build();
    let ext = ChaosContext::builder().scenario("from-extensions").build();
    let cx = opentelemetry::Context::current_with_baggage([
        KeyValue::new("chaos", "scenario=from-baggage"),
        KeyValue::new("test-traffic", "1"),
    ]);

    // Extensions win over the task.
    let body = task
        .clone()
        .scope(get(c.get(&url).with_extension(ext)))
        .await;
    assert_eq!(x_chaos(body).as_deref(), Some("scenario=from-extensions"));
    // The task wins over baggage.
    let body = task.scope(get(c.get(&url))).with_context(cx.clone()).await;
    assert_eq!(x_chaos(body).as_deref(), Some("scenario=from-task"));
    // Baggage alone.
    let body = get(c.get(&url)).with_context(cx).await;
    assert_eq!(body["x-test-traffic"], "1");
    assert_eq!(x_chaos(body).as_deref(), Some("scenario=from-baggage"));
    // Nothing: no header is added.
    let body = get(c.get(&url)).await;
    assert_eq!(x_chaos(body), None);
    // A request's own header is kept.
    let body = task_scoped(c.get(&url).header("x-chaos", "scenario=mine")).await;
    assert_eq!(x_chaos(body).as_deref(), Some("scenario=mine"));
}

async fn task_scoped(req: reqwest_middleware::RequestBuilder) -> Value {
    ChaosContext::builder()
        .scenario("from-task")
        .build()
        .scope(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
        .await
}

#[tokio::test]
async fn baggage_is_checked_like_headers() {
    let (dep, hits) = dependency_at().await;
    let url = format!("http://{dep}/headers");
    let cx = opentelemetry::Context::current_with_baggage([KeyValue::new(
        "chaos",
        "scenario=s1, abort=503;point=client",
    )]);
    // Unsigned directives in baggage are refused unless allowed, and not forwarded.
    let deny = engine(DENY);
    let res = client(&deny, "dep")
        .get(&url)
        .send()
        .with_context(cx.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["x-chaos"], "scenario=s1");
    // Allowed: the directive fires at this client.
    let allow = engine(ALLOW);
    let res = client(&allow, "dep")
        .get(&url)
        .send()
        .with_context(cx.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    // A scenario in baggage selects operator rules.
    let rules = engine(
        "rules: [{ id: s1-down, point: client, match: { scenario: s1 }, fault: { abort: 502 } }]",
    );
    let res = client(&rules, "dep")
        .get(&url)
        .send()
        .with_context(cx)
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(hits.get(), 1);
}
