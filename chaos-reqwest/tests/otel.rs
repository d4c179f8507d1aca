//! OpenTelemetry end to end (feature `otel`): the engine's metrics read back through the
//! SDK's in-memory exporter after a known sequence of requests through a server layer, a
//! reqwest hop and a sqlx (SQLite) statement; the context in W3C baggage across three real
//! services, the middle one forwarding only `baggage`. (Span events: `otel_trace.rs`.)

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Request, State};
use axum::routing::get;
use axum::{Json, Router};
use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext};
use chaos_sqlx::ChaosPool;
use chaos_tower::ChaosLayer;
use http::{HeaderMap, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use reqwest_middleware::ClientWithMiddleware;
use support::{client, dependency_at, reqwest_client, serve};
use tower_layer::Layer as _;

/// An SDK meter provider whose metrics are read back on demand.
struct Meters {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Meters {
    fn new() -> Meters {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Meters { provider, exporter }
    }

    /// Every chaos series now: `name{k=v,...}` → its value (a counter's sum, a
    /// histogram's `count=N sum=S`).
    fn series(&self) -> BTreeMap<String, String> {
        self.exporter.reset();
        self.provider.force_flush().unwrap();
        let mut out = BTreeMap::new();
        let exported = self.exporter.get_finished_metrics().unwrap();
        let Some(last) = exported.last() else {
            return out;
        };
        for scope in last.scope_metrics() {
            for m in scope.metrics() {
                let name = m.name();
                assert!(
                    name.starts_with("chaos."),
                    "only the engine records: {name}"
                );
                let key = |attrs: &mut dyn Iterator<Item = &KeyValue>| {
                    let mut kv: Vec<String> =
                        attrs.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
                    kv.sort();
                    format!("{name}{{{}}}", kv.join(","))
                };
                match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points() {
                            out.insert(key(&mut p.attributes()), p.value().to_string());
                        }
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            out.insert(key(&mut p.attributes()), format!("count={}", p.count()));
                            if name == chaos_core::otel::INJECTED_DELAY {
                                out.insert(
                                    format!("{} sum", key(&mut p.attributes())),
                                    format!("{:.3}", p.sum()),
                                );
                            }
                        }
                    }
                    other => panic!("unexpected data for {name}: {other:?}"),
                }
            }
        }
        out
    }
}

const RULES: &str = r#"
rules:
  - id: checkout-503
    point: server
    match: { path: /fail }
    fault: { abort: 503 }
  - id: checkout-shadow
    point: server
    match: { path: /shadow }
    mode: shadow
    fault: { abort: 500 }
  - id: payments-slow
    point: client
    target: payments
    every: 2
    fault: { delay: 20ms }
  - id: inventory-down
    point: sql
    target: inventory
    max_errors: 2
    fault: { error: unavailable }
"#;

/// What the checkout handlers share: the payments client and address, the database.
type Deps = (ClientWithMiddleware, SocketAddr, ChaosPool<sqlx::Sqlite>);

/// The checkout service: `/plain`, `/fail`, `/shadow` answer at once, `/pay` calls
/// payments through the middleware, `/stock` runs a statement through `ChaosPool`.
async fn checkout(chaos: &Chaos, payments: SocketAddr) -> SocketAddr {
    let pay = client(chaos, "payments");
    let db = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let db = ChaosPool::new(db, chaos, "inventory");
    let router = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/fail", get(|| async { "ok" }))
        .route("/shadow", get(|| async { "ok" }))
        .route(
            "/pay",
            get(|State((pay, payments, _)): State<Deps>| async move {
                let res = pay
                    .get(format!("http://{payments}/hello"))
                    .send()
                    .await
                    .unwrap();
                StatusCode::from_u16(res.status().as_u16()).unwrap()
            }),
        )
        .route(
            "/stock",
            get(|State((_, _, db)): State<Deps>| async move {
                match sqlx::query_scalar::<_, i64>("SELECT 7")
                    .fetch_one(&db)
                    .await
                {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }),
        )
        .with_state((pay, payments, db));
    serve(router, Some(ChaosLayer::new(chaos))).await
}

async fn get_n(addr: SocketAddr, path: &str, n: usize, header: Option<(&str, &str)>) -> Vec<u16> {
    let c = reqwest_client();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut req = c.get(format!("http://{addr}{path}"));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        out.push(req.send().await.unwrap().status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_injection_cohort_abort_and_rejected_header_exactly() {
    let meters = Meters::new();
    let chaos = Chaos::builder()
        .meter(meters.provider.meter("checkout"))
        .rules(RuleSet::parse(Format::Yaml, RULES).unwrap())
        .build()
        .unwrap();
    let (payments, _) = dependency_at().await;
    let app = checkout(&chaos, payments).await;

    // Requests that match nothing record nothing.
    assert_eq!(get_n(app, "/plain", 10, None).await, [200; 10]);
    assert_eq!(meters.series(), BTreeMap::new());

    assert_eq!(get_n(app, "/fail", 4, None).await, [503; 4]);
    assert_eq!(get_n(app, "/shadow", 3, None).await, [200; 3]);
    assert_eq!(get_n(app, "/pay", 6, None).await, [200; 6]);
    assert_eq!(
        get_n(app, "/stock", 5, None).await,
        [500, 500, 200, 200, 200],
        "two errors spend the budget, then the rule retires"
    );
    // Bad headers are ignored and counted by reason.
    get_n(app, "/plain", 2, Some(("x-chaos", "bogus=1"))).await;
    get_n(app, "/plain", 1, Some(("x-test-traffic", "maybe"))).await;
    get_n(app, "/plain", 1, Some(("x-chaos", "abort=503"))).await;
    chaos.abort_rule("checkout-503", "seen enough").unwrap();
    chaos.kill();

    let want: BTreeMap<String, String> = [
        // Injections: the server abort, the shadow rule, every other payments call, the
        // two statements of the budget.
        ("chaos.injections{fault=abort,mode=inject,point=server,rule=checkout-503,target=*}", "4"),
        ("chaos.injections{fault=abort,mode=shadow,point=server,rule=checkout-shadow,target=*}", "3"),
        ("chaos.injections{fault=delay,mode=inject,point=client,rule=payments-slow,target=payments}", "3"),
        ("chaos.injections{fault=error,mode=inject,point=sql,rule=inventory-down,target=inventory}", "2"),
        ("chaos.injected_delay{point=client,rule=payments-slow,target=payments}", "count=3"),
        ("chaos.injected_delay{point=client,rule=payments-slow,target=payments} sum", "0.060"),
        // Cohorts, counted at the server's response whichever hop the rule is at.
        ("chaos.cohort.requests{cohort=experiment,rule=checkout-503}", "4"),
        ("chaos.cohort.errors{cohort=experiment,rule=checkout-503}", "4"),
        ("chaos.cohort.duration{cohort=experiment,rule=checkout-503}", "count=4"),
        ("chaos.cohort.requests{cohort=experiment,rule=checkout-shadow}", "3"),
        ("chaos.cohort.duration{cohort=experiment,rule=checkout-shadow}", "count=3"),
        ("chaos.cohort.requests{cohort=experiment,rule=payments-slow}", "3"),
        ("chaos.cohort.duration{cohort=experiment,rule=payments-slow}", "count=3"),
        ("chaos.cohort.requests{cohort=control,rule=payments-slow}", "3"),
        ("chaos.cohort.duration{cohort=control,rule=payments-slow}", "count=3"),
        ("chaos.cohort.requests{cohort=experiment,rule=inventory-down}", "2"),
        ("chaos.cohort.errors{cohort=experiment,rule=inventory-down}", "2"),
        ("chaos.cohort.duration{cohort=experiment,rule=inventory-down}", "count=2"),
        // Rules stopped.
        ("chaos.aborts{reason=budget,rule=inventory-down}", "1"),
        ("chaos.aborts{reason=manual,rule=checkout-503}", "1"),
        ("chaos.aborts{reason=kill_switch,rule=*}", "1"),
        // Headers.
        ("chaos.header_rejected{reason=unknown_key}", "2"),
        ("chaos.header_rejected{reason=bad_test_traffic}", "1"),
        ("chaos.header_rejected{reason=directives_refused}", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(meters.series(), want);
    // The engine's own counters agree.
    let snap = chaos.snapshot();
    assert_eq!(snap.stats.injected, 4 + 3 + 2);
    assert_eq!(snap.stats.header_rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn a_guard_breach_counts_as_a_guard_abort() {
    let meters = Meters::new();
    let chaos = Chaos::builder()
        .meter(meters.provider.meter("worker"))
        .rules(
            RuleSet::parse(
                Format::Yaml,
                "rules: [{ id: queue-down, point: queue, fault: { error: unavailable }, \
                 guard: { error_rate_above: 10%, min_requests: 5, window: 1s } }]",
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(chaos.inject("queue", "orders", async {}).await.is_err());
    }
    tokio::time::advance(Duration::from_millis(150)).await;
    assert!(chaos.inject("queue", "orders", async {}).await.is_ok());
    let s = meters.series();
    assert_eq!(
        s.get("chaos.aborts{reason=guard,rule=queue-down}")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        s.get("chaos.injections{fault=error,mode=inject,point=queue,rule=queue-down,target=*}")
            .map(String::as_str),
        Some("5")
    );
}

// ---- baggage across three services

/// B: forwards only `baggage` (not `x-chaos`) to C, as a hop that knows OpenTelemetry but
/// not chaos would; answers with C's status and body.
async fn relay(c: SocketAddr) -> SocketAddr {
    let plain = reqwest_client();
    let router = Router::new()
        .route(
            "/{*path}",
            get(
                |State((plain, c)): State<(reqwest::Client, SocketAddr)>,
                 Path(path): Path<String>,
                 headers: HeaderMap| async move {
                    let mut req = plain.get(format!("http://{c}/{path}"));
                    for b in headers.get_all("baggage") {
                        req = req.header("baggage", b);
                    }
                    let res = req.send().await.unwrap();
                    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
                    (status, res.text().await.unwrap())
                },
            ),
        )
        .with_state((plain, c));
    serve(router, None).await
}

/// C: behind its own server layer; `/pay` pays, `/echo` tells what arrived.
async fn service_c(chaos: &Chaos) -> SocketAddr {
    let router = Router::new().route("/pay", get(|| async { "paid" })).route(
        "/echo",
        get(|headers: HeaderMap| async move {
            let ctx = ChaosContext::current();
            Json(serde_json::json!({
                "baggage": headers.get_all("baggage").iter()
                    .map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>(),
                "x-chaos": headers.get("x-chaos").map(|v| v.to_str().unwrap().to_owned()),
                "scenarios": ctx.map(|c| c.scenarios().to_vec()).unwrap_or_default(),
            }))
        }),
    );
    serve(router, Some(ChaosLayer::new(chaos))).await
}

fn engine(yaml: &str, keys: Option<&SigningKeys>) -> Chaos {
    let mut b = Chaos::builder().rules(RuleSet::parse(Format::Yaml, yaml).unwrap());
    if let Some(k) = keys {
        b = b.signing_keys(k.clone());
    }
    b.build().unwrap()
}

const C_RULES: &str = "rules: [{ id: c-down, point: server, match: { path: /pay, scenario: gameday-7 }, fault: { abort: 503 } }]";

#[tokio::test]
async fn a_scenario_crosses_a_hop_that_forwards_only_baggage() {
    let chaos_c = engine(C_RULES, None);
    let b = relay(service_c(&chaos_c).await).await;
    let chaos_a = engine("rules: []", None);
    let a = client(&chaos_a, "b");
    let tagged = ChaosContext::builder().scenario("gameday-7").build();
    let theirs = "user=alice;vip, tenant=acme";

    let res = a
        .get(format!("http://{b}/echo"))
        .header("baggage", theirs)
        .with_extension(tagged.clone())
        .send()
        .await
        .unwrap();
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        seen["x-chaos"],
        serde_json::Value::Null,
        "B forwards no x-chaos"
    );
    assert_eq!(
        seen["scenarios"],
        serde_json::json!(["gameday-7"]),
        "C read it from baggage"
    );
    let bag = seen["baggage"][0].as_str().unwrap();
    let members: Vec<&str> = bag.split(',').collect();
    assert_eq!(
        members,
        ["user=alice;vip", "tenant=acme", "chaos=scenario=gameday-7"],
        "other members arrive unchanged, ours once"
    );

    // The scenario selects C's rule; without it, C pays.
    let pay = |ctx: Option<ChaosContext>| {
        let mut req = a.get(format!("http://{b}/pay")).header("baggage", theirs);
        if let Some(c) = ctx {
            req = req.with_extension(c);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(pay(Some(tagged)).await, 503);
    assert_eq!(pay(None).await, 200);
    assert_eq!(chaos_c.snapshot().rules[0].counters.injected, 1);
}

#[tokio::test]
async fn a_signed_directive_survives_a_baggage_only_hop_and_an_unsigned_one_does_not() {
    let keys = SigningKeys::new("a long random secret for the fleet");
    // C accepts signed directives only.
    let chaos_c = engine("rules: []", Some(&keys));
    let b = relay(service_c(&chaos_c).await).await;
    let value = "abort=418;point=server";

    // A got a signed context from its own caller.
    let chaos_a = engine("rules: []", Some(&keys));
    let mut h = HeaderMap::new();
    h.insert("x-chaos", value.parse().unwrap());
    let sig = keys.sign(value, SystemTime::now() + Duration::from_secs(60));
    h.insert("x-chaos-signature", sig.parse().unwrap());
    let signed = chaos_a.context_from_headers(&h).unwrap();
    assert!(signed.is_trusted());
    // A's own server rules do not apply here: A only calls out.
    let a = client(&chaos_a, "b");
    let status = a
        .get(format!("http://{b}/pay"))
        .with_extension(signed)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 418,
        "the signature travelled in baggage and checked out at C"
    );

    // The same directive with a signature for another value is refused at C.
    let mut forged = HeaderMap::new();
    forged.insert(
        "baggage",
        format!(
            "chaos={},chaos-signature={}",
            "abort=418%3Bpoint=server",
            keys.sign(
                "abort=500;point=server",
                SystemTime::now() + Duration::from_secs(60)
            )
            .replace(',', "%2C")
        )
        .parse()
        .unwrap(),
    );
    let plain = reqwest_client();
    let mut req = plain.get(format!("http://{b}/pay"));
    for v in forged.get_all("baggage") {
        req = req.header("baggage", v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    assert_eq!(chaos_c.snapshot().stats.signature_rejected, 1);

    // Unsigned, in baggage from an outside caller: refused.
    let status = plain
        .get(format!("http://{b}/pay"))
        .header("baggage", "chaos=abort=418%3Bpoint=server")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_server_reads_an_opentelemetry_context_the_app_extracted() {
    let chaos = engine(C_RULES, None);
    let inner = Router::new().route("/pay", get(|| async { "paid" }));
    let chaos_svc = ChaosLayer::new(&chaos).layer(inner);
    // An outer layer, as an app's propagator would: the extracted context goes into the
    // request's extensions (here from a made-up `x-otel-scenario` header).
    let app = Router::new()
        .fallback_service(chaos_svc)
        .layer(axum::middleware::from_fn(
            |mut req: Request, next: axum::middleware::Next| async move {
                if let Some(s) = req.headers().get("x-otel-scenario") {
                    let cx = opentelemetry::Context::new().with_baggage([KeyValue::new(
                        "chaos",
                        format!("scenario={}", s.to_str().unwrap()),
                    )]);
                    req.extensions_mut().insert(cx);
                }
                next.run(req).await
            },
        ));
    let addr = serve(app, None).await;
    let c = reqwest_client();
    let status = |scenario: Option<&'static str>| {
        let mut req = c.get(format!("http://{addr}/pay"));
        if let Some(s) = scenario {
            req = req.header("x-otel-scenario", s);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(Some("gameday-7")).await, 503);
    assert_eq!(status(Some("other")).await, 200);
    assert_eq!(status(None).await, 200);
}
