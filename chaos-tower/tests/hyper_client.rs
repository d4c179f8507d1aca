//! The client layer around hyper-util's legacy `Client` as it is (its `Incoming` body
//! needs no boxing), against a real local server, for every fault; and what the layer
//! records in the engine's steady state.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use chaos_core::{Chaos, ChaosContext, InjectedFault};
use chaos_tower::{BoxError, ChaosClient, ChaosClientLayer, ChaosLayer, ChaosResponseBody};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{active, engine, serve};
use tower::{Service, ServiceExt};
use tower_layer::Layer;

type Legacy = Client<HttpConnector, Empty<Bytes>>;
type Wrapped = ChaosClient<Legacy>;

const BODY: &str = "0123456789abcdefghij";

/// The dependency: counts its calls, answers 20 bytes, or a 500 on `/fail`.
async fn dependency(hits: Arc<AtomicUsize>) -> SocketAddr {
    let count = |State(hits): State<Arc<AtomicUsize>>| async move {
        hits.fetch_add(1, Ordering::SeqCst);
        BODY
    };
    let fail = |State(hits): State<Arc<AtomicUsize>>| async move {
        hits.fetch_add(1, Ordering::SeqCst);
        (http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
    };
    let app = Router::new()
        .route("/data", get(count))
        .route("/fail", get(fail))
        .with_state(hits);
    serve(app, ChaosLayer::new(&Chaos::new())).await
}

fn wrapped(chaos: &Chaos) -> Wrapped {
    let legacy: Legacy = Client::builder(TokioExecutor::new()).build_http();
    ChaosClientLayer::new(chaos, "dep").layer(legacy)
}

async fn call(
    svc: &mut Wrapped,
    url: String,
    scenario: &str,
) -> Result<http::Response<ChaosResponseBody<Incoming>>, BoxError> {
    // The request's own context (a server layer above would have put the task's).
    let mut req = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
    req.extensions_mut()
        .insert(ChaosContext::builder().scenario(scenario).build());
    svc.ready().await?.call(req).await
}

const RULES: &str = r#"
rules:
  - { id: slow, point: client, target: dep, match: { scenario: slow }, fault: { delay: 150ms } }
  - { id: down, point: client, target: dep, match: { scenario: abort }, fault: { abort: { status: 503, body: busy } } }
  - { id: gone, point: client, target: dep, match: { scenario: unavailable }, fault: { error: unavailable } }
  - { id: late, point: client, target: dep, match: { scenario: timeout }, fault: { error: timeout } }
  - { id: cut, point: client, target: dep, match: { scenario: reset }, fault: { drop: reset } }
  - { id: stuck, point: client, target: dep, match: { scenario: hang }, fault: { drop: hang } }
  - { id: short, point: client, target: dep, match: { scenario: truncate }, fault: { body: { truncate_after: 5B } } }
  - { id: trickle, point: client, target: dep, match: { scenario: throttle }, fault: { body: { bytes_per_sec: 100B } } }
"#;

#[tokio::test]
async fn hyper_util_client_meets_every_fault() {
    let chaos = engine(RULES);
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let url = format!("http://{dep}/data");
    let mut svc = wrapped(&chaos);
    let seen = || hits.load(Ordering::SeqCst);

    // Nothing matches: the real answer, its body untouched.
    let res = call(&mut svc, url.clone(), "none").await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.body().is_injected());
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), BODY);
    assert_eq!(seen(), 1);

    // delay: the real answer, later, marked.
    let start = Instant::now();
    let res = call(&mut svc, url.clone(), "slow").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(res.headers()["x-chaos-injected"], "slow");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), BODY);
    assert_eq!(seen(), 2);

    // abort: answered here, the dependency not called.
    let res = call(&mut svc, url.clone(), "abort").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-chaos-injected"], "down");
    assert!(res.body().is_injected());
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "busy");
    assert_eq!(seen(), 2);

    // error: unavailable / timeout and drop: reset fail the call before it leaves.
    for (scenario, rule, check) in [
        (
            "unavailable",
            "gone",
            InjectedFault::is_unavailable as fn(&InjectedFault) -> bool,
        ),
        ("timeout", "late", InjectedFault::is_timeout),
        ("reset", "cut", InjectedFault::is_reset),
    ] {
        let err = call(&mut svc, url.clone(), scenario).await.unwrap_err();
        let fault = InjectedFault::find(&*err).expect(scenario);
        assert!(check(fault), "{scenario}: {fault}");
        assert_eq!(fault.rule_id(), rule);
    }
    assert_eq!(seen(), 2);

    // drop: hang: nothing until the caller gives up; the slot is freed with the future.
    let hung = tokio::time::timeout(
        Duration::from_millis(200),
        call(&mut svc, url.clone(), "hang"),
    )
    .await;
    assert!(hung.is_err(), "a hang answers nothing");
    assert_eq!(active(&chaos, "stuck"), 0);
    assert_eq!(seen(), 2);

    // body: truncate after 5 bytes, then a reset error attributed to the rule.
    let res = call(&mut svc, url.clone(), "truncate").await.unwrap();
    assert_eq!(res.headers()["x-chaos-injected"], "short");
    let mut body = res.into_body();
    let mut got = Vec::new();
    let err = loop {
        match body.frame().await {
            Some(Ok(f)) => got.extend_from_slice(&f.into_data().unwrap()),
            Some(Err(e)) => break e,
            None => panic!("a truncated body ends in an error"),
        }
    };
    assert_eq!(got, BODY.as_bytes()[..5]);
    assert!(InjectedFault::find(&*err).is_some_and(InjectedFault::is_reset));
    assert_eq!(seen(), 3);

    // body: throttled to 100 B/s, the whole body arrives, slowly.
    let start = Instant::now();
    let res = call(&mut svc, url.clone(), "throttle").await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), BODY);
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(seen(), 4);
}

#[tokio::test]
async fn the_client_layer_records_the_steady_state_of_its_dependency() {
    let chaos = engine(RULES);
    let hits = Arc::new(AtomicUsize::new(0));
    let dep = dependency(hits.clone()).await;
    let mut svc = wrapped(&chaos);
    for _ in 0..4 {
        call(&mut svc, format!("http://{dep}/data"), "none")
            .await
            .unwrap();
    }
    let res = call(&mut svc, format!("http://{dep}/fail"), "none")
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    call(&mut svc, format!("http://{dep}/data"), "abort")
        .await
        .unwrap();
    call(&mut svc, format!("http://{dep}/data"), "reset")
        .await
        .unwrap_err();
    call(&mut svc, format!("http://{dep}/data"), "slow")
        .await
        .unwrap();

    let seen = chaos
        .steady_state("client", "dep")
        .snapshot(Duration::from_secs(30));
    assert_eq!((seen.requests, seen.errors), (5, 1), "{seen:?}");
    assert_eq!((seen.injected, seen.injected_errors), (3, 2), "{seen:?}");
    // The layer's view is the engine's.
    let layer = ChaosClientLayer::new(&chaos, "dep");
    assert_eq!(layer.steady_state().snapshot(Duration::from_secs(30)), seen);
}
