//! Every fault of the middleware as a caller sees it, against a real local dependency.

mod support;

use std::time::{Duration, Instant};

use chaos_reqwest::{ChaosErrorExt, ChaosMiddleware, ChaosTarget, SkipChaos};
use reqwest_middleware::ClientBuilder;
use support::{BIG, active, client, dependency_at, engine, injected, reqwest_client};

#[tokio::test]
async fn abort_is_a_response_like_a_servers() {
    let chaos = engine(
        r#"
rules:
  - id: prices-down
    point: client
    target: prices
    match: { path: /price }
    fault:
      abort: { status: 503, body: '{"error":"prices are down"}', content_type: application/json, headers: { retry-after: "7" } }
"#,
    );
    let (addr, hits) = dependency_at().await;
    let url = format!("http://{addr}/price?currency=eur");
    let res = client(&chaos, "prices").get(&url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.url().as_str(), url);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(res.headers()["x-chaos-injected"], "prices-down");
    assert_eq!(res.content_length(), Some(27));

    // error_for_status fails as on a real 503, with the status and the URL.
    let err = res.error_for_status_ref().unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(err.url().map(|u| u.as_str()), Some(url.as_str()));
    // The error body decodes as JSON.
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "prices are down");
    assert_eq!(hits.get(), 0, "an abort never reaches the dependency");

    // Other paths and other dependencies are untouched.
    let res = client(&chaos, "prices")
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-chaos-injected").is_none());
    let res = client(&chaos, "orders").get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn error_faults_fail_before_the_request_leaves() {
    let chaos = engine(
        r#"
rules:
  - { id: down, point: client, match: { path: /hello }, fault: { error: unavailable } }
  - { id: late, point: client, match: { path: /price }, fault: { error: timeout } }
  - { id: cut, point: client, match: { path: /big }, fault: { drop: reset } }
"#,
    );
    let (addr, hits) = dependency_at().await;
    let c = ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::builder(&chaos).build())
        .build();
    let call = |path: &str| c.get(format!("http://{addr}{path}")).send();

    let err = call("/hello").await.unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    assert!(err.status().is_none() && err.url().is_none());
    let fault = err.injected_fault().unwrap();
    assert!(fault.is_unavailable());
    assert_eq!(fault.rule_id(), "down");
    assert!(err.to_string().contains("rule `down`"), "{err}");

    let err = call("/price").await.unwrap_err();
    assert!(err.injected_fault().unwrap().is_timeout());
    let err = call("/big").await.unwrap_err();
    assert!(err.injected_fault().unwrap().is_reset());
    assert_eq!(hits.get(), 0);
    assert_eq!(active(&chaos, "cut"), 0);
}

#[tokio::test]
async fn delay_arrives_late_and_counts_against_the_timeout() {
    let chaos = engine(
        r#"
rules:
  - { id: slow, point: client, match: { path: /hello }, fault: { delay: 300ms } }
  - { id: slower, point: client, match: { path: /price }, fault: { delay: 30s } }
  - { id: slow-too, point: client, match: { path: /slow }, fault: { delay: 400ms } }
"#,
    );
    let (addr, hits) = dependency_at().await;
    let c = client(&chaos, "dep");

    let t = Instant::now();
    let res = c
        .get(format!("http://{addr}/hello"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(res.headers()["x-chaos-injected"], "slow");
    assert_eq!(res.text().await.unwrap(), "hello");

    // A delay longer than the call's timeout ends when the timeout does.
    let t = Instant::now();
    let err = c
        .get(format!("http://{addr}/price"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert!(err.injected_fault().unwrap().is_timeout(), "{err:?}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(hits.get(), 1, "the delayed-out call never left");

    // What is left of the timeout after the delay is all the dependency gets: 1 s minus
    // 400 ms is less than the 800 ms /slow takes, so reqwest's own timeout fires.
    let err = c
        .get(format!("http://{addr}/slow"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_injected(), "{err:?}");
    let reqwest_middleware::Error::Reqwest(e) = &err else {
        panic!("{err:?}")
    };
    assert!(e.is_timeout(), "{e:?}");
}

#[tokio::test]
async fn hang_is_cut_by_the_calls_timeout_and_frees_its_slot() {
    let chaos = engine("rules: [{ id: stuck, point: client, fault: { drop: hang } }]");
    let (addr, hits) = dependency_at().await;
    let url = format!("http://{addr}/hello");

    // The request's own timeout.
    let t = Instant::now();
    let err = client(&chaos, "dep")
        .get(&url)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.injected_fault().unwrap().is_timeout(), "{err:?}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(active(&chaos, "stuck"), 0);

    // The client's timeout, told to the middleware.
    let c = ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .with(
        ChaosMiddleware::builder(&chaos)
            .timeout(Duration::from_millis(300))
            .build(),
    )
    .build();
    let err = c.get(&url).send().await.unwrap_err();
    assert!(err.injected_fault().unwrap().is_timeout(), "{err:?}");

    // A timeout around the call drops it, and the slot with it.
    let c = client(&chaos, "dep");
    let call = c.get(&url).send();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    assert_eq!(active(&chaos, "stuck"), 0);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn kill_switch_lets_a_hung_call_through() {
    let chaos = engine("rules: [{ id: stuck, point: client, fault: { drop: hang } }]");
    let (addr, hits) = dependency_at().await;
    let c = client(&chaos, "dep");
    let call = tokio::spawn(async move { c.get(format!("http://{addr}/hello")).send().await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while active(&chaos, "stuck") == 0 {
        assert!(Instant::now() < deadline, "the call never hung");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    chaos.kill();
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.text().await.unwrap(), "hello");
    assert_eq!(hits.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn hang_without_a_timeout_ends_at_the_ceiling() {
    let chaos = engine(
        "limits: { max_hang: 45s }\nrules: [{ id: stuck, point: client, fault: { drop: hang } }]",
    );
    // Port 9 (discard) on loopback: the call never gets that far.
    let start = tokio::time::Instant::now();
    let err = client(&chaos, "dep")
        .get("http://127.0.0.1:9/hello")
        .send()
        .await
        .unwrap_err();
    assert!(err.injected_fault().unwrap().is_timeout(), "{err:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(45));
}

#[tokio::test]
async fn truncated_body_errors_after_the_given_bytes() {
    let chaos = engine(
        "rules: [{ id: cut, point: client, match: { path: /big }, fault: { body: { truncate_after: 100 } } }]",
    );
    let (addr, _) = dependency_at().await;
    let mut res = client(&chaos, "dep")
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-chaos-injected"], "cut");
    assert_eq!(res.url().path(), "/big");
    let mut got = 0;
    let err = loop {
        match res.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => panic!("the body ended whole after {got} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, 100);
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    let fault = err.injected_fault().unwrap();
    assert!(fault.is_reset());
    assert_eq!(fault.rule_id(), "cut");
    assert_eq!(active(&chaos, "cut"), 0);
}

#[tokio::test]
async fn throttled_body_arrives_whole_and_slowly() {
    let chaos = engine(
        "rules: [{ id: trickle, point: client, match: { path: /big }, fault: { body: { bytes_per_sec: 2000 } } }]",
    );
    let (addr, _) = dependency_at().await;
    let t = Instant::now();
    let body = client(&chaos, "dep")
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.len(), BIG);
    // 1000 bytes at 2000 B/s: about half a second (the first chunk goes out at once).
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn stalled_body_holds_until_the_kill_switch() {
    let chaos = engine(
        "rules: [{ id: stall, point: client, match: { path: /big }, fault: { body: { stall_after: 10 } } }]",
    );
    let (addr, _) = dependency_at().await;
    let mut res = client(&chaos, "dep")
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap();
    let first = res.chunk().await.unwrap().unwrap();
    assert_eq!(first.len(), 10);
    let next = tokio::time::timeout(Duration::from_millis(300), res.chunk()).await;
    assert!(next.is_err(), "the body should be stalled");
    chaos.kill();
    let rest = res.bytes().await.unwrap();
    assert_eq!(first.len() + rest.len(), BIG);
}

#[tokio::test]
async fn matching_on_method_path_host_and_dependency() {
    let chaos = engine(
        r#"
rules:
  - { id: post-only, point: client, target: payments, match: { method: POST, path: /hello }, fault: { abort: 502 } }
  - { id: by-host, point: client, match: { host: "127.0.0.*", path: /price }, fault: { abort: 503 } }
  - { id: by-default-name, point: client, target: 127.0.0.1, match: { path: /big }, fault: { abort: 504 } }
"#,
    );
    let (addr, _) = dependency_at().await;
    let status =
        |res: reqwest_middleware::Result<reqwest::Response>| res.unwrap().status().as_u16();
    let payments = client(&chaos, "payments");
    let url = |p: &str| format!("http://{addr}{p}");

    assert_eq!(status(payments.post(url("/hello")).send().await), 502);
    assert_eq!(status(payments.get(url("/hello")).send().await), 200);
    assert_eq!(
        status(client(&chaos, "orders").post(url("/hello")).send().await),
        200
    );
    // The per-call target wins over the middleware's.
    let res = client(&chaos, "orders")
        .post(url("/hello"))
        .with_extension(ChaosTarget::new("payments"))
        .send()
        .await;
    assert_eq!(status(res), 502);
    assert_eq!(status(payments.get(url("/price")).send().await), 503);
    // Without a name, the dependency is the host.
    let unnamed = ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::builder(&chaos).build())
        .build();
    assert_eq!(status(unnamed.get(url("/big")).send().await), 504);
    assert_eq!(status(payments.get(url("/big")).send().await), 200);
    // SkipChaos leaves a call alone.
    let res = payments
        .post(url("/hello"))
        .with_extension(SkipChaos)
        .send()
        .await;
    assert_eq!(status(res), 200);
    assert_eq!(injected(&chaos, "post-only"), 2);
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_answers() {
    let chaos = engine(
        r#"
rules:
  - { id: grpc-down, point: client, match: { path: /hello }, fault: { abort: "grpc:14" } }
  - { id: grpc-late, point: client, match: { path: /price }, fault: { error: timeout } }
"#,
    );
    let (addr, _) = dependency_at().await;
    let c = client(&chaos, "dep");
    let call = |p: &str| {
        c.post(format!("http://{addr}{p}"))
            .header("content-type", "application/grpc")
            .send()
    };
    let res = call("/hello").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    let res = call("/price").await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "4");
}
