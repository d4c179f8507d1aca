//! The steady state in the engine: one per point and target, shared, fed by the generic
//! injection point.

use std::time::{Duration, Instant};

use chaos_core::rules::{ErrorKind, Fault, Match, Rule};
use chaos_core::{Chaos, ChaosContext};

#[tokio::test]
async fn the_generic_point_records_each_call_organic_and_injected_apart() {
    let chaos = Chaos::new();
    chaos
        .add_rule(
            Rule::new(
                "queue-down",
                "queue.publish",
                Fault::Error(ErrorKind::Unavailable),
            )
            .with_match(Match::default().scenario("down")),
        )
        .unwrap();
    for _ in 0..3 {
        chaos
            .inject("queue.publish", "orders", async {})
            .await
            .unwrap();
    }
    let down = ChaosContext::builder().scenario("down").build();
    let failed = down
        .scope(chaos.inject("queue.publish", "orders", async {}))
        .await;
    assert!(failed.unwrap_err().is_unavailable());
    // Another target of the same point is another steady state.
    chaos
        .inject("queue.publish", "audit", async {})
        .await
        .unwrap();

    let orders = chaos.steady_state("queue.publish", "orders");
    let seen = orders.snapshot(Duration::from_secs(30));
    assert_eq!((seen.requests, seen.errors), (3, 0), "{seen:?}");
    assert_eq!((seen.injected, seen.injected_errors), (1, 1), "{seen:?}");
    assert_eq!(
        chaos
            .steady_state("queue.publish", "audit")
            .snapshot(Duration::from_secs(30))
            .requests,
        1
    );
    let mut points: Vec<_> = chaos
        .steady_states()
        .iter()
        .map(|s| format!("{}/{}", s.point(), s.target()))
        .collect();
    points.sort();
    assert_eq!(points, ["queue.publish/audit", "queue.publish/orders"]);
}

#[tokio::test]
async fn an_unarmed_engine_records_nothing() {
    let chaos = Chaos::new();
    chaos
        .inject("queue.publish", "orders", async {})
        .await
        .unwrap();
    assert!(chaos.steady_states().is_empty());
}

#[test]
fn every_recorder_of_a_point_and_target_shares_one_steady_state() {
    let chaos = Chaos::new();
    let a = chaos.steady_state("server", "checkout");
    let b = chaos.steady_state("server", "checkout");
    a.record(Instant::now(), true, false);
    b.record(Instant::now(), false, true);
    let seen = chaos
        .steady_state("server", "checkout")
        .snapshot(Duration::from_secs(5));
    assert_eq!((seen.requests, seen.errors, seen.injected), (1, 1, 1));
    assert_eq!(chaos.steady_states().len(), 1);
}
