//! Every server fault seen by a real client over a real `axum::serve` on loopback.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::ChaosLayer;
use support::{BIG, active, app, client, engine, serve};

#[tokio::test]
async fn abort_answers_with_the_rules_status_body_and_headers() {
    let chaos = engine(
        r#"
rules:
  - id: orders-down
    point: server
    match: { path: /orders/* }
    fault:
      abort: { status: 503, body: "orders are down", content_type: text/plain, headers: { retry-after: "7" } }
"#,
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let res = client()
        .get(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-chaos-injected"], "orders-down");
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "orders are down");

    // Other paths are untouched, and carry no attribution header.
    let res = client()
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-chaos-injected").is_none());
    assert_eq!(res.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn host_rules_match_the_host_the_client_called() {
    let chaos = engine(
        r#"
rules:
  - { id: by-name, point: server, match: { host: "*.internal" }, fault: { abort: 502 } }
  - { id: by-ip, point: server, match: { host: 127.0.0.1, path: /orders/* }, fault: { abort: 503 } }
"#,
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let get = |path: &'static str, host: Option<&'static str>| {
        let mut req = client().get(format!("http://{addr}{path}"));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // reqwest sends `Host: 127.0.0.1:PORT`; the port is not part of the match.
    assert_eq!(get("/orders/1", None).await, 503);
    assert_eq!(get("/hello", None).await, 200);
    assert_eq!(get("/hello", Some("orders.internal:8080")).await, 502);
    assert_eq!(get("/hello", Some("orders.example.com")).await, 200);
}

#[tokio::test]
async fn attribution_header_can_be_renamed_or_turned_off() {
    let chaos = engine("rules: [{ id: a, point: server, fault: { abort: 500 } }]");
    let off = ChaosLayer::builder(&chaos).injected_header(None).build();
    let addr = serve(app(), off).await;
    let res = client()
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.headers().get("x-chaos-injected").is_none());

    let renamed = ChaosLayer::builder(&chaos)
        .injected_header(Some(http::HeaderName::from_static("x-fault")))
        .build();
    let addr = serve(app(), renamed).await;
    let res = client()
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-fault"], "a");
}

#[tokio::test]
async fn delay_is_measured_by_the_client() {
    let chaos = engine(
        "rules: [{ id: slow, point: server, match: { path: /orders/* }, fault: { delay: 400ms } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let c = client();
    let t = Instant::now();
    let res = c
        .get(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap();
    let slow = t.elapsed();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-chaos-injected"], "slow");
    assert_eq!(res.text().await.unwrap(), "order");
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    assert!(slow < Duration::from_secs(10), "{slow:?}");
}

#[tokio::test]
async fn reset_closes_http1_with_no_bytes_written() {
    let chaos = engine("rules: [{ id: cut, point: server, fault: { drop: reset } }]");
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;

    // reqwest sees a connection error, not a response.
    let err = client()
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request(), "{err:?}");
    assert!(err.status().is_none());

    // A raw socket reads end-of-stream with nothing before it.
    let got = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf
    })
    .await
    .unwrap();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(active(&chaos, "cut"), 0);
}

#[tokio::test]
async fn reset_resets_the_http2_stream_and_the_connection_survives() {
    let chaos = engine(
        "rules: [{ id: cut, point: server, match: { path: /orders/* }, fault: { drop: reset } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let err = h2
        .get(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request(), "{err:?}");
    let ok = h2.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn hang_is_cut_by_the_client_timeout_and_frees_its_slot() {
    let chaos = engine("rules: [{ id: black-hole, point: server, fault: { drop: hang } }]");
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = c
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // The client went away: hyper drops the future, which frees the slot.
    let deadline = Instant::now() + Duration::from_secs(10);
    while active(&chaos, "black-hole") != 0 {
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn kill_switch_releases_a_hung_request() {
    let chaos = engine("rules: [{ id: black-hole, point: server, fault: { drop: hang } }]");
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let req = tokio::spawn(client().get(format!("http://{addr}/hello")).send());
    let deadline = Instant::now() + Duration::from_secs(10);
    while active(&chaos, "black-hole") != 1 {
        assert!(Instant::now() < deadline, "never hung");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    chaos.kill();
    let res = tokio::time::timeout(Duration::from_secs(10), req)
        .await
        .expect("released")
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn truncated_body_stops_after_the_given_bytes() {
    let chaos = engine(
        "rules: [{ id: cut-body, point: server, match: { path: /big }, fault: { body: { truncate_after: 100 } } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let mut res = client()
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-chaos-injected"], "cut-body");
    let mut got = 0;
    let err = loop {
        match res.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => panic!("body ended cleanly after {got} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, 100);
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );

    // A body shorter than the limit passes whole.
    let chaos = engine(
        "rules: [{ id: cut-body, point: server, fault: { body: { truncate_after: 5000 } } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let body = client()
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap()
        .text()
        .await;
    assert_eq!(body.unwrap().len(), BIG);
}

#[tokio::test]
async fn throttled_body_arrives_whole_and_slowly() {
    let chaos = engine(
        "rules: [{ id: slow-body, point: server, match: { path: /big }, fault: { body: { bytes_per_sec: 2KiB } } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let t = Instant::now();
    let body = client()
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(body.len(), BIG);
    // 1000 bytes at 2048 B/s: about half a second.
    assert!(took >= Duration::from_millis(400), "{took:?}");
}

#[tokio::test]
async fn stalled_body_is_cut_by_the_client_and_released_by_the_kill_switch() {
    let chaos = engine(
        "rules: [{ id: stall, point: server, match: { path: /big }, fault: { body: { stall_after: 10 } } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let mut res = client()
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap();
    let first = res.chunk().await.unwrap().unwrap();
    assert_eq!(first.len(), 10);
    let more = tokio::time::timeout(Duration::from_millis(300), res.chunk()).await;
    assert!(more.is_err(), "the body should stall");
    chaos.kill();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut n = 0;
        while let Some(c) = res.chunk().await.unwrap() {
            n += c.len();
        }
        n
    })
    .await
    .expect("released by the kill switch");
    assert_eq!(rest, BIG - 10);
}

#[tokio::test]
async fn error_faults_map_to_http_statuses() {
    let chaos = engine(
        r#"
rules:
  - { id: unavailable, point: server, match: { path: /orders/1 }, fault: { error: unavailable } }
  - { id: timeout, point: server, match: { path: /orders/2 }, fault: { error: timeout } }
"#,
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let c = client();
    let a = c
        .get(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 503);
    let b = c
        .get(format!("http://{addr}/orders/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 504);
}

#[tokio::test]
async fn context_is_visible_in_the_handler() {
    let chaos = Chaos::new();
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let tagged = || {
        client()
            .get(format!("http://{addr}/ctx"))
            .header("x-chaos", "scenario=checkout-test")
            .header("x-test-traffic", "1")
    };
    // Twice: the second request's context comes from the cache, and is the same.
    for _ in 0..2 {
        let body = tagged().send().await.unwrap().text().await.unwrap();
        assert_eq!(
            body,
            r#"ext=None current=Some("checkout-test") test_traffic=true header=Some("scenario=checkout-test")"#
        );
    }
    // In the extensions too, when asked.
    let with_ext = ChaosLayer::builder(&chaos).context_extension(true).build();
    let addr = serve(app(), with_ext).await;
    let body = client()
        .get(format!("http://{addr}/ctx"))
        .header("x-chaos", "scenario=checkout-test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        r#"ext=Some("checkout-test") current=Some("checkout-test") test_traffic=false header=Some("scenario=checkout-test")"#
    );
    // Without headers there is no context.
    let body = client()
        .get(format!("http://{addr}/ctx"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ext=None current=None test_traffic=false header=None");
}

#[tokio::test]
async fn handlers_extract_the_context_with_or_without_the_extension() {
    use axum::Router;
    use axum::routing::get;
    use chaos_tower::RequestContext;

    async fn extracted(RequestContext(ctx): RequestContext) -> String {
        match ctx {
            Some(c) => format!("{:?} test_traffic={}", c.scenarios(), c.is_test_traffic()),
            None => "none".to_owned(),
        }
    }
    let router = || Router::new().route("/x", get(extracted));
    let get = |addr: std::net::SocketAddr, tagged: bool| async move {
        let mut req = client().get(format!("http://{addr}/x"));
        if tagged {
            req = req
                .header("x-chaos", "scenario=checkout-test")
                .header("x-test-traffic", "1");
        }
        req.send().await.unwrap().text().await.unwrap()
    };
    let chaos = Chaos::new();
    let armed = engine(
        "rules: [{ id: other, point: server, match: { path: /other }, fault: { abort: 503 } }]",
    );
    for (name, layer) in [
        ("default", ChaosLayer::new(&chaos)),
        ("armed", ChaosLayer::new(&armed)),
        (
            "extension",
            ChaosLayer::builder(&chaos).context_extension(true).build(),
        ),
    ] {
        let addr = serve(router(), layer).await;
        assert_eq!(
            get(addr, true).await,
            r#"["checkout-test"] test_traffic=true"#,
            "{name}"
        );
        assert_eq!(get(addr, false).await, "none", "{name}");
    }
    // As a route layer inside the router too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router().layer(ChaosLayer::new(&chaos));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    assert_eq!(
        get(addr, true).await,
        r#"["checkout-test"] test_traffic=true"#
    );
    // Without the layer, the headers alone make no context.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router()).await.unwrap() });
    assert_eq!(get(addr, true).await, "none");
}

#[tokio::test]
async fn scenario_selects_operator_rules_only_for_tagged_requests() {
    let chaos = engine(
        "rules: [{ id: gameday, point: server, match: { scenario: gameday-7 }, fault: { abort: 502 } }]",
    );
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let c = client();
    let plain = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let tagged = c
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "scenario=gameday-7")
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 502);
    assert_eq!(tagged.headers()["x-chaos-injected"], "gameday");
}

#[tokio::test]
async fn unsigned_directives_are_ignored_by_default() {
    let chaos = Chaos::builder()
        .signing_keys(chaos_core::context::signature::SigningKeys::new(
            "k3y-for-tests",
        ))
        .build()
        .unwrap();
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let c = client();
    let unsigned = c
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "abort=503")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 200);
    assert_eq!(chaos.snapshot().stats.directives_refused, 1);

    // A forged signature is refused too.
    let forged = c
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "abort=503")
        .header("x-chaos-signature", "t=9999999999,v1=00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);

    // A valid signature lets the directive through.
    let keys = chaos_core::context::signature::SigningKeys::new("k3y-for-tests");
    let sig = keys.sign(
        "abort=503",
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    let signed = c
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "abort=503")
        .header("x-chaos-signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 503);
    assert_eq!(signed.headers()["x-chaos-injected"], "x-chaos");

    // `allow_directives` (tests, staging) accepts them unsigned.
    let open = Chaos::new();
    open.replace(RuleSet::parse(Format::Yaml, "allow_directives: true\nrules: []").unwrap())
        .unwrap();
    let addr = serve(app(), ChaosLayer::new(&open)).await;
    let res = c
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "abort=418")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 418);
}

#[tokio::test]
async fn trust_boundary_strips_untrusted_headers() {
    let chaos = engine(
        "rules: [{ id: gameday, point: server, match: { scenario: gameday-7 }, fault: { abort: 502 } }]",
    );
    let edge = ChaosLayer::builder(&chaos).trust_boundary(true).build();
    let addr = serve(app(), edge).await;
    let c = client();
    let res = c
        .get(format!("http://{addr}/ctx"))
        .header("x-chaos", "scenario=gameday-7")
        .header("x-test-traffic", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the internet cannot select a scenario");
    assert_eq!(
        res.text().await.unwrap(),
        "ext=None current=None test_traffic=false header=None"
    );
}

#[tokio::test]
async fn trust_boundary_keeps_signed_contexts() {
    let keys = chaos_core::context::signature::SigningKeys::new("edge-key");
    let chaos = Chaos::builder().signing_keys(keys.clone()).build().unwrap();
    let edge = ChaosLayer::builder(&chaos).trust_boundary(true).build();
    let addr = serve(app(), edge).await;
    let value = "scenario=gameday-7, delay=1ms";
    let sig = keys.sign(
        value,
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    let body = client()
        .get(format!("http://{addr}/ctx"))
        .header("x-chaos", value)
        .header("x-chaos-signature", sig)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.starts_with(r#"ext=None current=Some("gameday-7")"#),
        "{body}"
    );
}

#[tokio::test]
async fn bad_headers_never_fail_the_request() {
    let chaos =
        engine("rules: [{ id: a, point: server, match: { scenario: s1 }, fault: { abort: 503 } }]");
    let addr = serve(app(), ChaosLayer::new(&chaos)).await;
    let res = client()
        .get(format!("http://{addr}/hello"))
        .header("x-chaos", "scenario=s1, delay=forever, ===, abort=999")
        .header("x-test-traffic", "maybe")
        .send()
        .await
        .unwrap();
    // The valid tag still selects the rule; the bad items are counted.
    assert_eq!(res.status(), 503);
    assert!(chaos.snapshot().stats.header_rejected >= 2);
}

#[tokio::test]
async fn steady_state_counts_injected_responses_apart() {
    let chaos = engine(
        "rules: [{ id: half, point: server, match: { path: /orders/* }, fault: { abort: 503 } }]",
    );
    let layer = ChaosLayer::new(&chaos);
    let addr = serve(app(), layer.clone()).await;
    let c = client();
    for _ in 0..5 {
        c.get(format!("http://{addr}/hello")).send().await.unwrap();
        c.get(format!("http://{addr}/orders/1"))
            .send()
            .await
            .unwrap();
    }
    let seen = layer.steady_state().snapshot(Duration::from_secs(30));
    assert_eq!(seen.requests, 5);
    assert_eq!(seen.errors, 0);
    assert_eq!(seen.injected, 5);
    assert_eq!(seen.injected_errors, 5);
    assert!(seen.p99.is_some());
    // It is the engine's steady state of the point, where guards read it.
    assert_eq!(
        chaos
            .steady_state("server", "")
            .snapshot(Duration::from_secs(30)),
        seen
    );
}
