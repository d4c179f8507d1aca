//! reqwest-retry around the chaos middleware: injected failures are retried as real ones,
//! and retries stop at the policy's budget.

mod support;

use std::time::Duration;

use chaos_core::Chaos;
use chaos_reqwest::{ChaosErrorExt, ChaosMiddleware, ChaosRetryableStrategy};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryTransientMiddleware, RetryableStrategy};
use support::{dependency_at, engine, injected, reqwest_client};

fn policy(retries: u32) -> ExponentialBackoff {
    ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(retries)
}

/// Retry outside, chaos inside: every attempt passes through chaos.
fn retrying<R>(chaos: &Chaos, retries: u32, strategy: R) -> ClientWithMiddleware
where
    R: RetryableStrategy + Send + Sync + 'static,
{
    ClientBuilder::new(reqwest_client())
        .with(RetryTransientMiddleware::new_with_policy_and_strategy(
            policy(retries),
            strategy,
        ))
        .with(ChaosMiddleware::new(chaos, "dep"))
        .build()
}

#[tokio::test]
async fn an_injected_503_is_retried_until_the_dependency_answers() {
    let chaos = engine("rules: [{ id: flaky, point: client, fault: { abort: 503 }, first: 2 }]");
    let (addr, hits) = dependency_at().await;
    let c = retrying(&chaos, 3, ChaosRetryableStrategy::default());
    let res = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello");
    assert_eq!(injected(&chaos, "flaky"), 2);
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn an_injected_503_gives_up_after_the_budget() {
    let chaos = engine("rules: [{ id: down, point: client, fault: { abort: 503 } }]");
    let (addr, hits) = dependency_at().await;
    // The default strategy sees an injected 503 exactly as a real one.
    let c = retrying(&chaos, 2, reqwest_retry::DefaultRetryableStrategy);
    let res = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-chaos-injected"], "down");
    assert_eq!(injected(&chaos, "down"), 3, "one call and two retries");
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn an_injected_transient_error_is_retried_with_the_chaos_strategy() {
    for fault in ["error: unavailable", "error: timeout", "drop: reset"] {
        let chaos = engine(&format!(
            "rules: [{{ id: blip, point: client, fault: {{ {fault} }}, first: 2 }}]"
        ));
        let (addr, hits) = dependency_at().await;
        let c = retrying(&chaos, 3, ChaosRetryableStrategy::default());
        let res = c.get(format!("http://{addr}/hello")).send().await;
        assert_eq!(res.unwrap().status(), 200, "{fault}");
        assert_eq!(injected(&chaos, "blip"), 2, "{fault}");
        assert_eq!(hits.get(), 1, "{fault}");
    }
}

#[tokio::test]
async fn an_injected_transient_error_gives_up_after_the_budget() {
    let chaos = engine("rules: [{ id: down, point: client, fault: { error: unavailable } }]");
    let (addr, hits) = dependency_at().await;
    let c = retrying(&chaos, 2, ChaosRetryableStrategy::default());
    let err = c
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(injected(&chaos, "down"), 3, "one call and two retries");
    assert!(err.to_string().contains("after 2 retries"), "{err}");
    // The fault is found through reqwest-retry's wrapping.
    let fault = err.injected_fault().expect("found through RetryError");
    assert!(fault.is_unavailable());
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn without_the_chaos_strategy_an_injected_error_is_fatal() {
    // What reqwest-retry does with any middleware error: no retry. This is why
    // ChaosRetryableStrategy exists.
    let chaos = engine("rules: [{ id: down, point: client, fault: { error: unavailable } }]");
    let (addr, _) = dependency_at().await;
    let c = retrying(&chaos, 3, reqwest_retry::DefaultRetryableStrategy);
    let err = c
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(injected(&chaos, "down"), 1);
    assert!(err.injected_fault().is_some_and(|f| f.is_unavailable()));
}

#[tokio::test]
async fn chaos_outside_retry_hits_the_caller_directly() {
    let chaos = engine("rules: [{ id: flaky, point: client, fault: { abort: 503 }, first: 1 }]");
    let (addr, hits) = dependency_at().await;
    let c = ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::new(&chaos, "dep"))
        .with(RetryTransientMiddleware::new_with_policy(policy(3)))
        .build();
    let res = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 503, "retry never saw the injected answer");
    assert_eq!(hits.get(), 0);
    let res = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
