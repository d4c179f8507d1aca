//! The explorer over the demo's checkout (`chaos_examples::checkout`): an order request
//! reaches the server layer (checkout), sqlx (inventory) and reqwest (payments, and a
//! planted shipping quote with no timeout). Every hop it reaches is failed in turn, each
//! plan under a scenario of its own, and the result is held against the reviewed map
//! `tests/resilience/checkout.yaml`.
//!
//! The body, `checkout::order_taken`, is the test: an order, sent as the scenario's, must
//! be taken. Each plan builds its own checkout, on the one engine. Checkout keeps state that
//! outlives a request and is shared by all of them: a circuit breaker, which opens after
//! five failed charges, and a stock cache. Plans run in parallel, so on one shared
//! checkout one plan's failed charges could open the breaker for another, whose own fault
//! would then never be injected. A checkout per plan keeps the plans apart, and each
//! serves an untagged order first, so its cache is warm as a running checkout's is.

use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::testing::{Exploration, Explore, PLAN_VAR, Tried};
use chaos_examples::checkout::{self, Setup};

const MAP: &str = "tests/resilience/checkout.yaml";

/// The exploration of an order, with the shipping quote planted.
async fn explore(chaos: &Chaos, pay_later: bool, at_once: usize) -> Exploration {
    let setup = Setup {
        pay_later,
        shipping_without_timeout: true,
    };
    let engine = chaos.clone();
    Explore::new(chaos)
        .faults(
            "client",
            [
                "abort 503",
                "abort 500",
                "drop reset",
                "drop hang",
                "delay 1s",
            ],
        )
        .unwrap()
        .faults(
            "sql",
            [
                "error sqlstate:40001",
                "error unavailable",
                "error timeout",
                "delay 300ms",
            ],
        )
        .unwrap()
        .concurrency(at_once)
        .time_limit(Duration::from_secs(5))
        .run(move |scenario| checkout::order_taken(engine.clone(), setup, scenario))
        .await
        .unwrap()
}

fn tried<'a>(found: &'a Exploration, id: &str) -> &'a Tried {
    &found
        .result(id)
        .unwrap_or_else(|| panic!("no plan `{id}` in\n{found}"))
        .tried
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_of_an_order_is_failed_in_turn_and_matches_the_reviewed_map() {
    let chaos = Chaos::new();
    let found = explore(&chaos, true, 16).await;
    println!("{found}");
    if std::env::var(PLAN_VAR).is_ok() {
        // One plan re-run alone: only the map's line for it is checked.
        return found.assert_map(MAP);
    }
    let hops = found
        .hops()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(
        hops,
        [
            "server checkout",
            "sql inventory",
            "client payments",
            "client shipping"
        ],
        "{found}"
    );
    // The known finding: the stock read falls back when slow, not on an error.
    assert_eq!(
        tried(&found, "sql inventory × delay 300ms"),
        &Tried::Tolerated
    );
    assert!(
        matches!(tried(&found, "sql inventory × error sqlstate:40001"), Tried::Fails(m) if m.starts_with("500")),
        "{found}"
    );
    // "Pay later" takes every payments fault, and the retry each one revealed.
    for fault in [
        "abort 503",
        "abort 500",
        "drop reset",
        "drop hang",
        "delay 1s",
    ] {
        assert_eq!(
            tried(&found, &format!("client payments × {fault}")),
            &Tried::Tolerated,
            "{found}"
        );
    }
    assert_eq!(
        tried(
            &found,
            "client payments × abort 503 → client payments #2 × abort 503"
        ),
        &Tried::Tolerated
    );
    // The planted hop: asked with no timeout, it holds the order as long as it hangs.
    assert_eq!(tried(&found, "client shipping × drop hang"), &Tried::Hangs);
    assert_eq!(
        tried(&found, "client shipping × abort 503"),
        &Tried::Tolerated
    );
    assert!(found.results().len() >= 30, "{found}");
    found.assert_map(MAP);
    assert!(chaos.snapshot().rules.is_empty(), "nothing left behind");
}

/// The mutation the map is for: without "pay later", the map no longer holds on
/// payments. One failed charge is still absorbed, by the retry; a 503 on the retry too
/// now reaches the caller as a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pay_later_the_map_no_longer_holds_and_names_payments() {
    let chaos = Chaos::new();
    let found = explore(&chaos, false, 16).await;
    assert_eq!(
        tried(&found, "client payments × abort 503"),
        &Tried::Tolerated
    );
    let why = found.check_map(MAP).unwrap_err();
    assert!(
        why.contains(
            "\n  client payments #2 (after client payments × abort 503) × abort 503: the map says tolerated, the test now fails: 502 Bad Gateway: payments failed: "
        ),
        "{why}"
    );
    // Only payments changed.
    assert!(
        why.lines()
            .skip(1)
            .filter(|l| l.starts_with("  "))
            .all(|l| l.starts_with("  client payments #2 (after client payments × ")),
        "{why}"
    );
    assert!(
        found.to_string().contains(
            "re-run alone: CHAOS_EXPLORE_PLAN='client payments × abort 503 → client payments #2 × abort 503' cargo test without_pay_later_the_map_no_longer_holds_and_names_payments"
        ),
        "{found}"
    );
}

/// Four explorations at once on one engine, each with four plans at a time: none sees
/// another's faults, so each finds the same map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_explorations_at_once_each_find_the_reviewed_map() {
    let chaos = Chaos::new();
    let (a, b, c, d) = tokio::join!(
        explore(&chaos, true, 4),
        explore(&chaos, true, 4),
        explore(&chaos, true, 4),
        explore(&chaos, true, 4)
    );
    for found in [a, b, c, d] {
        found.assert_map(MAP);
    }
    // Every injection went to a request of the plan whose rule it was (a plan's rule is
    // `ID.SCENARIO`, and the journal keeps the scenario of the request it went into).
    let journal = chaos.journal();
    assert!(!journal.is_empty());
    for e in &journal {
        let scope = e.scope.as_deref().expect("every plan's request is tagged");
        assert!(e.rule.ends_with(&format!(".{scope}")), "{e:?}");
    }
    assert!(chaos.snapshot().rules.is_empty());
}
