//! A raw hyper 1 server (no axum) and in-process calls under paused time.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use chaos_core::Chaos;
use chaos_tower::{BoxError, ChaosLayer};
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use support::engine;
use tower::{Layer, ServiceExt, service_fn};

type Body = UnsyncBoxBody<Bytes, BoxError>;

async fn hello<B>(_req: Request<B>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(
        Full::new(Bytes::from_static(b"hello"))
            .map_err(|n| match n {})
            .boxed_unsync(),
    ))
}

#[tokio::test]
async fn works_on_a_raw_hyper_server() {
    let chaos = engine(
        r#"
rules:
  - { id: teapot, point: server, match: { path: /tea }, fault: { abort: 418 } }
  - { id: cut, point: server, match: { path: /cut }, fault: { drop: reset } }
"#,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = ChaosLayer::new(&chaos);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(layer.layer(service_fn(hello)));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let ok = c.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "hello");
    let tea = c.get(format!("http://{addr}/tea")).send().await.unwrap();
    assert_eq!(tea.status(), 418);
    assert_eq!(tea.headers()["x-chaos-injected"], "teapot");
    let err = c
        .get(format!("http://{addr}/cut"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn delay_holds_for_exactly_the_drawn_time() {
    let chaos = engine("rules: [{ id: slow, point: server, fault: { delay: 2s } }]");
    let svc = ChaosLayer::new(&chaos).layer(service_fn(hello));
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.headers()["x-chaos-injected"], "slow");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
}

#[tokio::test(start_paused = true)]
async fn kill_switch_cuts_a_delay_short() {
    let chaos = engine("rules: [{ id: slow, point: server, fault: { delay: 20s } }]");
    let svc = ChaosLayer::new(&chaos).layer(service_fn(hello));
    let start = tokio::time::Instant::now();
    let call = tokio::spawn(svc.oneshot(Request::new(())));
    tokio::time::sleep(Duration::from_secs(1)).await;
    chaos.kill();
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_body_takes_its_time() {
    let chaos =
        engine("rules: [{ id: slow-body, point: server, fault: { body: { bytes_per_sec: 10 } } }]");
    let big = |_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(
            Full::new(Bytes::from(vec![b'x'; 50]))
                .map_err(|n| match n {})
                .boxed_unsync(),
        ))
    };
    let svc = ChaosLayer::new(&chaos).layer(service_fn(big));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let start = tokio::time::Instant::now();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 50);
    // 50 bytes at 10 B/s, one byte per step: the last step's wait ends the body.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_active_limits_concurrent_injections() {
    let chaos =
        engine("rules: [{ id: slow, point: server, max_active: 1, fault: { delay: 10s } }]");
    let layer = ChaosLayer::new(&chaos);
    let first = tokio::spawn(layer.layer(service_fn(hello)).oneshot(Request::new(())));
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The slot is taken: the second request passes at once.
    let start = tokio::time::Instant::now();
    let second = layer
        .layer(service_fn(hello))
        .oneshot(Request::new(()))
        .await
        .unwrap();
    assert!(second.headers().get("x-chaos-injected").is_none());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.headers()["x-chaos-injected"], "slow");
}

#[tokio::test]
async fn a_cut_body_fails_with_an_attributed_reset() {
    let chaos =
        engine("rules: [{ id: cut-body, point: server, fault: { body: { truncate_after: 3 } } }]");
    let svc = ChaosLayer::new(&chaos).layer(service_fn(hello));
    let mut body = svc.oneshot(Request::new(())).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "hel");
    let err = loop {
        match body.frame().await {
            Some(Err(e)) => break e,
            Some(Ok(f)) => assert!(f.data_ref().is_none_or(|d| d.is_empty()), "{f:?}"),
            None => panic!("the body ended cleanly"),
        }
    };
    let fault = chaos_core::InjectedFault::find(&*err).expect("an injected fault");
    assert!(fault.is_reset());
    assert_eq!(fault.rule_id(), "cut-body");
    assert_eq!(active(&chaos), 0, "the slot is freed with the body");
}

fn active(chaos: &Chaos) -> u32 {
    chaos
        .snapshot()
        .rules
        .iter()
        .map(|r| r.counters.active)
        .sum()
}
