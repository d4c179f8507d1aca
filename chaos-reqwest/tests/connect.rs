//! The connector layer: faults reqwest reports as its own errors, on new connections only.

mod support;

use std::time::{Duration, Instant};

use chaos_core::Chaos;
use chaos_core::rules::{ErrorKind, Fault, Rule};
use chaos_reqwest::{ChaosConnectLayer, ChaosErrorExt};
use reqwest_middleware::ClientBuilder;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use support::{dependency_at, engine, injected};

/// A client whose every call opens a new connection.
fn fresh_connections(chaos: &Chaos) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_millis(300))
        .connector_layer(ChaosConnectLayer::new(chaos, "dep"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn refused_and_reset_connects_are_reqwests_own_connect_errors() {
    for (fault, reset) in [("error: unavailable", false), ("drop: reset", true)] {
        let chaos = engine(&format!(
            "rules: [{{ id: no-conn, point: connect, target: dep, fault: {{ {fault} }} }}]"
        ));
        let (addr, hits) = dependency_at().await;
        let err = fresh_connections(&chaos)
            .get(format!("http://{addr}/hello"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{fault}: {err:?}");
        assert!(!err.is_timeout(), "{fault}: {err:?}");
        assert_eq!(err.url().map(|u| u.path()), Some("/hello"));
        let f = err.injected_fault().expect("the fault is in the chain");
        assert_eq!(f.rule_id(), "no-conn");
        assert_eq!(f.is_reset(), reset, "{fault}");
        assert_eq!(hits.get(), 0);
    }
}

#[tokio::test]
async fn a_hung_connect_is_cut_by_reqwests_connect_timeout() {
    let chaos = engine("rules: [{ id: stuck, point: connect, fault: { drop: hang } }]");
    let (addr, hits) = dependency_at().await;
    let t = Instant::now();
    let err = fresh_connections(&chaos)
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connect(), "{err:?}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(hits.get(), 0);
    // Dropped by reqwest's timeout: the slot is free again.
    let active = chaos.snapshot().rules[0].counters.active;
    assert_eq!(active, 0);
}

#[tokio::test]
async fn an_injected_timeout_is_a_connect_timeout() {
    let chaos = engine("rules: [{ id: late, point: connect, fault: { error: timeout } }]");
    let (addr, _) = dependency_at().await;
    let err = fresh_connections(&chaos)
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connect(), "{err:?}");
    assert!(err.injected_fault().unwrap().is_timeout());
}

#[tokio::test]
async fn reqwest_retry_retries_connect_faults_with_its_default_strategy() {
    let chaos =
        engine("rules: [{ id: blip, point: connect, fault: { error: unavailable }, first: 2 }]");
    let (addr, hits) = dependency_at().await;
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let c = ClientBuilder::new(fresh_connections(&chaos))
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build();
    let res = c.get(format!("http://{addr}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(injected(&chaos, "blip"), 2);
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn pooled_connections_bypass_the_connector() {
    let chaos = Chaos::new();
    let (addr, hits) = dependency_at().await;
    // HTTP/2: the one connection is shared and stays pooled from its handshake on, so the
    // second call reuses it without racing the first one's return to the pool.
    let pooled = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .connector_layer(ChaosConnectLayer::new(&chaos, "dep"))
        .build()
        .unwrap();
    let url = format!("http://{addr}/hello");
    // The first call opens a connection, which stays in the pool.
    assert_eq!(
        pooled.get(&url).send().await.unwrap().text().await.unwrap(),
        "hello"
    );
    chaos
        .add_rule(Rule::new(
            "no-conn",
            "connect",
            Fault::Error(ErrorKind::Unavailable),
        ))
        .unwrap();
    // The pooled connection is reused: the rule never runs.
    assert_eq!(pooled.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(injected(&chaos, "no-conn"), 0);
    // A client that connects every time meets it.
    let err = fresh_connections(&chaos)
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect());
    assert_eq!(injected(&chaos, "no-conn"), 1);
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn a_delayed_connect_then_connects() {
    let chaos = engine("rules: [{ id: slow, point: connect, fault: { delay: 200ms } }]");
    let (addr, hits) = dependency_at().await;
    let t = Instant::now();
    let res = fresh_connections(&chaos)
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "hello");
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(hits.get(), 1);
}
