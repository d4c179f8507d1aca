//! The client's timeout cuts an injected delay, as it would a slow server's answer, when
//! the client is made with `ChaosMiddleware::client(..).timeout(..)`; a delay with no
//! timeout known to the middleware is said once in the log. A real dependency on loopback.

mod support;

use std::time::{Duration, Instant};

use chaos_reqwest::{ChaosErrorExt, ChaosMiddleware};
use support::{Logs, dependency_at, engine, injected};

const SLOW_PRICES: &str = r#"
rules:
  - id: pricing-slow
    point: client
    target: pricing
    fault: { delay: 2s }
"#;

/// What a caller does: the live price, else the cached one.
async fn price(client: &reqwest_middleware::ClientWithMiddleware, url: &str) -> &'static str {
    match client.get(url).send().await {
        Ok(res) if res.status().is_success() => "live",
        _ => "cached",
    }
}

#[tokio::test]
async fn the_clients_timeout_cuts_an_injected_delay_and_the_fallback_runs() {
    let chaos = engine(SLOW_PRICES);
    let (addr, hits) = dependency_at().await;
    let url = format!("http://{addr}/price");
    let pricing = ChaosMiddleware::client(&chaos, "pricing")
        .timeout(Duration::from_millis(100))
        .reqwest(|b| b.no_proxy())
        .build()
        .unwrap();

    let started = Instant::now();
    let err = pricing.get(&url).send().await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the 2 s delay ran in full: {took:?}"
    );
    let fault = err.injected_fault().expect("the injected fault");
    assert!(fault.is_timeout(), "{fault}");
    assert_eq!(fault.rule_id(), "pricing-slow");
    assert_eq!(hits.get(), 0, "the timed-out call never left");

    assert_eq!(price(&pricing, &url).await, "cached");
    assert_eq!(injected(&chaos, "pricing-slow"), 2);

    // Without the rule the same client answers live: the timeout is reqwest's too.
    chaos.remove_rule("pricing-slow").unwrap();
    assert_eq!(price(&pricing, &url).await, "live");
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn middlewares_added_to_the_builder_run_outside_chaos() {
    use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
    let chaos = engine(
        r#"
rules:
  - { id: pricing-flaky, point: client, target: pricing, first: 2, fault: { abort: 503 } }
"#,
    );
    let (addr, hits) = dependency_at().await;
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let pricing = ChaosMiddleware::client(&chaos, "pricing")
        .timeout(Duration::from_secs(5))
        .reqwest(|b| b.no_proxy())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build()
        .unwrap();
    let res = pricing
        .get(format!("http://{addr}/price"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "two injected 503s retried, the third attempt passes"
    );
    assert_eq!(injected(&chaos, "pricing-flaky"), 2);
    assert_eq!(hits.get(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_delay_no_timeout_can_cut_is_said_once() {
    let logs = Logs::capture();

    let chaos = engine(
        r#"
rules:
  - { id: pricing-slow, point: client, target: pricing, fault: { delay: 50ms } }
"#,
    );
    let (addr, _hits) = dependency_at().await;
    // Made by hand, its timeout given to reqwest only: the middleware cannot know it.
    let by_hand = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
    .with(ChaosMiddleware::new(&chaos, "pricing"))
    .build();
    for _ in 0..3 {
        let res = by_hand
            .get(format!("http://{addr}/price"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let text = logs.text();
    let said = text
        .lines()
        .filter(|l| l.contains("no timeout known to the middleware"))
        .collect::<Vec<_>>();
    assert_eq!(said.len(), 1, "{text}");
    assert!(said[0].contains("rule=\"pricing-slow\""), "{}", said[0]);
    assert!(said[0].contains("ChaosMiddleware::client"), "{}", said[0]);

    // With the timeout stated once, nothing is said.
    let logs_before = text.len();
    let made = ChaosMiddleware::client(&chaos, "pricing")
        .timeout(Duration::from_secs(5))
        .reqwest(|b| b.no_proxy())
        .build()
        .unwrap();
    made.get(format!("http://{addr}/price"))
        .send()
        .await
        .unwrap();
    let text = logs.text();
    assert!(
        !text[logs_before..].contains("no timeout known"),
        "{}",
        &text[logs_before..]
    );
}
