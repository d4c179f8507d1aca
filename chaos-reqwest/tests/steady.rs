//! What the middleware records in the engine's steady state: each call's outcome, organic
//! and injected apart.

mod support;

use std::time::Duration;

use chaos_core::ChaosContext;
use chaos_reqwest::ChaosMiddleware;
use reqwest_middleware::ClientBuilder;
use support::{client, dependency_at, engine, reqwest_client};

#[tokio::test]
async fn calls_are_recorded_by_dependency_organic_and_injected_apart() {
    let chaos = engine(
        r#"
rules:
  - { id: down, point: client, target: prices, match: { scenario: abort }, fault: { abort: 503 } }
  - { id: cut, point: client, target: prices, match: { scenario: reset }, fault: { drop: reset } }
  - { id: slow, point: client, target: prices, match: { scenario: slow }, fault: { delay: 10ms } }
"#,
    );
    let (addr, hits) = dependency_at().await;
    let prices = client(&chaos, "prices");
    for _ in 0..3 {
        assert!(
            prices
                .get(format!("http://{addr}/hello"))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let res = prices
        .get(format!("http://{addr}/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    for scenario in ["abort", "reset", "slow"] {
        let ctx = ChaosContext::builder().scenario(scenario).build();
        let _ = ctx
            .scope(prices.get(format!("http://{addr}/hello")).send())
            .await;
    }
    assert_eq!(hits.get(), 5, "abort and reset never left");

    let seen = chaos
        .steady_state("client", "prices")
        .snapshot(Duration::from_secs(30));
    assert_eq!((seen.requests, seen.errors), (4, 1), "{seen:?}");
    assert_eq!((seen.injected, seen.injected_errors), (3, 2), "{seen:?}");

    // Only what records has a steady state: the target, not an unnamed one.
    let points: Vec<_> = chaos
        .steady_states()
        .iter()
        .map(|s| format!("{}/{}", s.point(), s.target()))
        .collect();
    assert_eq!(points, ["client/prices"]);

    // A middleware named by the host records under the empty target.
    let by_host = ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::builder(&chaos).build())
        .build();
    by_host
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    let seen = chaos
        .steady_state("client", "")
        .snapshot(Duration::from_secs(30));
    assert_eq!(seen.requests, 1);
}

#[tokio::test]
async fn nothing_is_recorded_while_the_engine_is_unarmed() {
    let chaos = chaos_core::Chaos::new();
    let (addr, _) = dependency_at().await;
    client(&chaos, "prices")
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    let seen = chaos
        .steady_state("client", "prices")
        .snapshot(Duration::from_secs(30));
    assert_eq!(seen.requests, 0);
}

#[tokio::test]
async fn targets_named_per_call_are_known_once_called_armed_or_not() {
    // No rules: the engine is not armed, and still learns where a rule could fire.
    let chaos = chaos_core::Chaos::new();
    let (addr, _) = dependency_at().await;
    let named = client(&chaos, "prices");
    let by_host = ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::builder(&chaos).build())
        .build();
    let known = |c: &chaos_core::Chaos| {
        c.known_targets()
            .iter()
            .map(|k| format!("{}/{}", k.point, k.target))
            .collect::<Vec<_>>()
    };
    // A named middleware is known when built; one named by the host, once it calls.
    assert_eq!(known(&chaos), ["client/prices"]);
    by_host
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    by_host
        .get(format!("http://{addr}/hello"))
        .with_extension(chaos_reqwest::ChaosTarget::new("ledger"))
        .send()
        .await
        .unwrap();
    named
        .get(format!("http://{addr}/hello"))
        .with_extension(chaos_reqwest::ChaosTarget::new("fx"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        known(&chaos),
        [
            "client/127.0.0.1",
            "client/fx",
            "client/ledger",
            "client/prices"
        ]
    );
    // A rule for a host nobody called is warned of.
    let typo = chaos_core::rules::Rule::new(
        "typo",
        "client",
        chaos_core::rules::Fault::Abort(chaos_core::rules::Abort::http(503)),
    )
    .with_target("legder");
    let w = chaos.target_warnings(&[typo]);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].seen, ["127.0.0.1", "fx", "ledger", "prices"]);
}
