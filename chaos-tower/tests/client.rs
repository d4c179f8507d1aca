//! The client layer around hyper-util's client: context forwarded to a second local
//! service, client-point faults injected before the call leaves.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::routing::get;
use bytes::Bytes;
use chaos_core::{Chaos, InjectedFault};
use chaos_tower::{BoxError, ChaosClientLayer, ChaosLayer};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{client, engine, serve};
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The dependency: echoes the chaos headers it received and counts its calls.
async fn dependency(hits: Arc<AtomicUsize>) -> SocketAddr {
    let echo = |State(hits): State<Arc<AtomicUsize>>, req: Request| async move {
        hits.fetch_add(1, Ordering::SeqCst);
        let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        format!(
            "x-chaos={:?} x-test-traffic={:?}",
            h("x-chaos"),
            h("x-test-traffic")
        )
    };
    let app = Router::new().route("/echo", get(echo)).with_state(hits);
    serve(app, ChaosLayer::new(&Chaos::new())).await
}

/// The service under test: its handler calls the dependency through the client layer.
async fn caller(chaos: &Chaos, dep: SocketAddr) -> SocketAddr {
    caller_with(chaos, dep, ChaosClientLayer::new(chaos, "prices")).await
}

/// The same, with the client layer given.
async fn caller_with(chaos: &Chaos, dep: SocketAddr, layer: ChaosClientLayer) -> SocketAddr {
    let http: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    // hyper-util's client as it is: its `Incoming` body needs no boxing.
    let to_dep = ServiceBuilder::new().layer(layer).service(http);
    let call = move |State(svc): State<_>| async move {
        let mut svc: chaos_tower::ChaosClient<_> = svc;
        let req = http::Request::get(format!("http://{dep}/echo"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        match svc.ready().await.unwrap().call(req).await {
            Ok(res) => {
                let status = res.status();
                let injected = res.headers().get("x-chaos-injected").cloned();
                let text = res
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                format!("{status} {injected:?} {}", String::from_utf8_lossy(&text))
            }
            Err(e) => {
                let f = InjectedFault::find(&*e);
                format!(
                    "error reset={} rule={:?}",
                    f.is_some_and(|f| f.is_reset()),
                    f.map(|f| f.rule_id().to_owned())
                )
            }
        }
    };
    let app = Router::new().route("/call", get(call)).with_state(to_dep);
    serve(app, ChaosLayer::builder(chaos).target("checkout").build()).await
}

#[tokio::test]
async fn context_is_forwarded_to_the_next_hop() {
    let chaos = engine("allow_directives: true\nrules: []");
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let addr = caller(&chaos, dep).await;
    let body = client()
        .get(format!("http://{addr}/call"))
        .header("x-chaos", "scenario=s1, delay=1ms;target=elsewhere;hops=2")
        .header("x-test-traffic", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        r#"200 OK None x-chaos=Some("scenario=s1, delay=1ms;target=elsewhere;hops=1") x-test-traffic=Some("1")"#
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Without a context nothing is added.
    let body = client()
        .get(format!("http://{addr}/call"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "200 OK None x-chaos=None x-test-traffic=None");
}

#[tokio::test]
async fn the_builder_keeps_the_context_inside_and_can_leave_responses_unmarked() {
    let chaos = engine(
        "rules: [{ id: prices-503, point: client, target: prices, match: { scenario: s9 }, fault: { abort: 503 } }]",
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let layer = ChaosClientLayer::builder(&chaos)
        .target("prices")
        .forward(false)
        .injected_header(None)
        .build_static();
    let addr = caller_with(&chaos, dep, layer).await;
    let call = |scenario: &str| {
        client()
            .get(format!("http://{addr}/call"))
            .header("x-chaos", format!("scenario={scenario}"))
            .header("x-test-traffic", "1")
            .send()
    };
    // Another scenario passes, and nothing of the context leaves.
    let body = call("other").await.unwrap().text().await.unwrap();
    assert_eq!(body, "200 OK None x-chaos=None x-test-traffic=None");
    // The rule's scenario is injected, without the attribution header.
    let body = call("s9").await.unwrap().text().await.unwrap();
    assert_eq!(body, "503 Service Unavailable None ");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn client_abort_is_synthesized_without_calling_the_dependency() {
    let chaos = engine(
        "rules: [{ id: prices-503, point: client, target: prices, match: { scenario: s2 }, fault: { abort: 503 } }]",
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let addr = caller(&chaos, dep).await;
    let body = client()
        .get(format!("http://{addr}/call"))
        .header("x-chaos", "scenario=s2")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, r#"503 Service Unavailable Some("prices-503") "#);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_reset_is_a_connection_error() {
    let chaos = engine(
        "rules: [{ id: prices-reset, point: client, target: prices, fault: { drop: reset } }]",
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let addr = caller(&chaos, dep).await;
    let body = client()
        .get(format!("http://{addr}/call"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, r#"error reset=true rule=Some("prices-reset")"#);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn client_delay_and_hang_honour_paused_time() {
    let chaos = engine(
        r#"
rules:
  - { id: slow, point: client, target: svc, match: { path: /slow }, fault: { delay: 3s } }
  - { id: hang, point: client, target: svc, match: { path: /hang }, fault: { drop: hang } }
"#,
    );
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::default()))
    });
    let mut svc = ServiceBuilder::new()
        .layer(ChaosClientLayer::new(&chaos, "svc"))
        .service(inner);
    let start = tokio::time::Instant::now();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::get("/slow").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), std::time::Duration::from_secs(3));
    assert_eq!(res.headers()["x-chaos-injected"], "slow");

    // A hang reaches the `max_hang` ceiling (5 minutes by default): a timeout error.
    let start = tokio::time::Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::get("/hang").body(()).unwrap())
        .await
        .unwrap_err();
    assert!(InjectedFault::find(&*err).is_some_and(InjectedFault::is_timeout));
    assert_eq!(start.elapsed(), std::time::Duration::from_secs(300));
}

#[tokio::test]
async fn with_otel_the_context_comes_from_opentelemetry_baggage_and_goes_out_in_baggage() {
    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt as _;

    let chaos = engine(
        "rules: [{ id: s1-down, point: client, target: svc, match: { scenario: s1, path: /down }, fault: { abort: 502 } }]",
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::<http::HeaderMap>::new()));
    let inner = {
        let seen = seen.clone();
        tower::service_fn(move |req: http::Request<()>| {
            seen.lock().unwrap().push(req.headers().clone());
            async { Ok::<_, std::convert::Infallible>(http::Response::new(Body::default())) }
        })
    };
    let mut svc = ServiceBuilder::new()
        .layer(ChaosClientLayer::new(&chaos, "svc"))
        .service(inner);
    let cx = opentelemetry::Context::current_with_baggage([KeyValue::new("chaos", "scenario=s1")]);
    let mut call = |path: &str, attach: bool| {
        let req = http::Request::get(path)
            .header("baggage", "user=7;vip")
            .body(())
            .unwrap();
        let _g = attach.then(|| cx.clone().attach());
        // The decision and the forwarding happen in `call`, where the context is attached.
        svc.call(req)
    };
    let res = call("/up", true).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = call("/down", true).await.unwrap();
    assert_eq!(
        res.status(),
        502,
        "the scenario from baggage selects the rule"
    );
    let res = call("/down", false).await.unwrap();
    assert_eq!(res.status(), 200, "without it, nothing");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "the abort never left");
    assert_eq!(seen[0]["x-chaos"], "scenario=s1");
    assert_eq!(seen[0]["baggage"], "user=7;vip,chaos=scenario=s1");
    assert!(!seen[1].contains_key("x-chaos"));
    assert_eq!(seen[1]["baggage"], "user=7;vip", "other baggage untouched");
}
