//! The explorer over `Chaos::inject` points: it finds the hops a test reaches from the
//! engine's own records, fails each in turn, follows what a fault reveals, and never
//! counts a fault that was not injected as a pass.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::testing::{Explore, ExploreError, Scenario, Tried};

/// The code under test: a price read from a cache that falls back to the database, and a
/// stock check with no fallback at all.
async fn checkout(chaos: &Chaos) -> Result<u32, String> {
    let price = match chaos.inject("cache", "prices", async { 42 }).await {
        Ok(p) => p,
        Err(_) => chaos
            .inject("db", "prices", async { 42 })
            .await
            .map_err(|e| format!("no price: {e}"))?,
    };
    let stock = chaos
        .inject("stock", "warehouse", async { 3 })
        .await
        .map_err(|e| format!("no stock answer: {e}"))?;
    Ok(price * stock)
}

/// A body for the explorer: `work`, on the engine, in the scenario it is given.
fn in_scenario<W, Fut>(
    chaos: &Chaos,
    work: W,
) -> impl Fn(Scenario) -> Pin<Box<dyn Future<Output = Fut::Output> + Send>> + Send + Sync + 'static
where
    W: Fn(Chaos) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
{
    let chaos = chaos.clone();
    move |scenario| {
        let work = work(chaos.clone());
        Box::pin(async move { scenario.context().scope(work).await })
    }
}

/// A body for the explorer: checkout in the scenario, and the caller must get 126.
fn body(
    chaos: &Chaos,
) -> impl Fn(Scenario) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync + 'static
{
    in_scenario(chaos, |chaos| async move {
        let total = checkout(&chaos).await?;
        if total == 126 {
            Ok(())
        } else {
            Err(format!("total {total}"))
        }
    })
}

fn tried<'a>(found: &'a chaos_core::testing::Exploration, id: &str) -> &'a Tried {
    &found
        .result(id)
        .unwrap_or_else(|| panic!("no plan `{id}` in\n{found}"))
        .tried
}

#[tokio::test(start_paused = true)]
async fn every_hop_is_failed_in_turn_and_a_revealed_fallback_is_followed() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos).run(body(&chaos)).await.unwrap();
    let hops = found
        .hops()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(hops, ["cache prices", "stock warehouse"], "{found}");

    assert_eq!(
        tried(&found, "cache prices × error unavailable"),
        &Tried::Tolerated
    );
    assert_eq!(tried(&found, "cache prices × delay 1s"), &Tried::Tolerated);
    assert!(
        matches!(tried(&found, "stock warehouse × error unavailable"), Tried::Fails(m) if m.contains("no stock answer")),
        "{found}"
    );
    // The cache's error revealed the database read: tried with the cache's fault in.
    let revealed = "cache prices × error unavailable → db prices × error unavailable";
    assert!(
        matches!(tried(&found, revealed), Tried::Fails(m) if m.contains("no price")),
        "{found}"
    );
    let r = found.result(revealed).unwrap();
    assert_eq!(
        r.hop_key(),
        "db prices (after cache prices × error unavailable)"
    );
    // 2 hops × 2 faults, and 2 for the revealed hop.
    assert_eq!(found.results().len(), 6, "{found}");
    assert!(found.over_budget().is_empty());
    assert!(found.unstable().is_empty());
    // Nothing the exploration installed is left behind.
    assert!(chaos.snapshot().rules.is_empty());
    assert!(!chaos.is_armed());
}

#[tokio::test]
async fn a_body_that_fails_without_faults_is_an_error() {
    let chaos = Chaos::new();
    let err = Explore::new(&chaos)
        .run(|_s| async { Err::<(), _>("expected 126, got 0") })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the test fails without faults: expected 126, got 0"
    );
    let err = Explore::new(&chaos)
        .run(|_s| async {
            let total = 0;
            assert!(total == 126, "assertion failed: total == 126");
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("panicked: assertion failed: total == 126"),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_that_reaches_no_hop_is_an_error() {
    let chaos = Chaos::new();
    let c = chaos.clone();
    // The call is not tagged with the scenario.
    let err = Explore::new(&chaos)
        .run(move |_s| {
            let c = c.clone();
            async move {
                c.inject("cache", "prices", async { 1 }).await.unwrap();
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err, ExploreError::NoHop);
    assert!(
        err.to_string()
            .starts_with("no hop reached: is the request tagged with the scenario?"),
        "{err}"
    );
    // With the kill switch on, nothing is reached either: said as such.
    chaos.kill();
    let err = Explore::new(&chaos).run(|_s| async {}).await.unwrap_err();
    assert_eq!(err, ExploreError::Killed);
}

#[test]
fn an_unknown_fault_is_refused_when_the_explorer_is_built() {
    let chaos = Chaos::new();
    let err = Explore::new(&chaos)
        .faults("sql", ["error sqlstate:40001", "explode now"])
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown fault: fault `explode now`"),
        "{err}"
    );
    let err = Explore::new(&chaos)
        .faults("client", ["abort"])
        .unwrap_err();
    assert!(err.to_string().contains("is not `KIND VALUE`"), "{err}");
    assert!(
        Explore::new(&chaos)
            .faults(
                "client",
                ["abort 502", "abort=503", "drop: reset", "delay 2s"]
            )
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hop_without_a_timeout_hangs() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos)
        .faults("rpc", ["drop hang"])
        .unwrap()
        .time_limit(Duration::from_secs(5))
        .run(in_scenario(&chaos, |c| async move {
            // One call with a timeout of its own, one without.
            let guarded = tokio::time::timeout(
                Duration::from_secs(1),
                c.inject("rpc", "quotes", async { 1 }),
            )
            .await
            .unwrap_or(Ok(0));
            let bare = c.inject("rpc", "ledger", async { 1 }).await;
            guarded.map_err(|e| e.to_string())?;
            bare.map(|_| ()).map_err(|e| e.to_string())
        }))
        .await
        .unwrap();
    assert_eq!(
        tried(&found, "rpc quotes × drop hang"),
        &Tried::Tolerated,
        "{found}"
    );
    assert_eq!(
        tried(&found, "rpc ledger × drop hang"),
        &Tried::Hangs,
        "{found}"
    );
    let table = found.to_string();
    assert!(table.contains("hangs (no timeout)"), "{table}");
    assert!(
        table.contains("re-run alone: CHAOS_EXPLORE_PLAN='rpc ledger × drop hang'"),
        "{table}"
    );
}

#[tokio::test]
async fn a_fault_never_injected_is_not_reached_never_a_pass() {
    let chaos = Chaos::new();
    let runs = Arc::new(AtomicU32::new(0));
    // Reaches `flags` in the two runs without faults, and never after.
    let found = Explore::new(&chaos)
        .concurrency(1)
        .run(in_scenario(&chaos, move |c| {
            let runs = runs.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    c.inject("flags", "beta", async {}).await.ok();
                }
                c.inject("cache", "prices", async {}).await.ok();
            }
        }))
        .await
        .unwrap();
    assert!(
        matches!(tried(&found, "flags beta × error unavailable"), Tried::NotReached(m) if m.contains("never injected")),
        "{found}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.yaml");
    found.write_map(&path).unwrap();
    let why = found.check_map(&path).unwrap_err();
    assert!(
        why.contains("flags beta × error unavailable: not reached"),
        "{why}"
    );
    // Not in the map either: it was never tried.
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("flags beta")
    );
}

#[tokio::test]
async fn a_hop_reached_in_one_run_and_not_the_other_is_unstable() {
    let chaos = Chaos::new();
    let runs = Arc::new(AtomicU32::new(0));
    let found = Explore::new(&chaos)
        .concurrency(1)
        .run(in_scenario(&chaos, move |c| {
            let runs = runs.clone();
            async move {
                c.inject("cache", "prices", async {}).await.ok();
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    c.inject("cache", "prices", async {}).await.ok();
                }
            }
        }))
        .await
        .unwrap();
    assert_eq!(found.unstable(), ["cache prices #2"], "{found}");
    assert!(found.results().iter().all(|r| r.hop.call == 1), "{found}");
    assert!(
        found
            .to_string()
            .contains("unstable, not tried: cache prices #2")
    );
    // Reported, not a difference from the map.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.yaml");
    found.write_map(&path).unwrap();
    found.check_map(&path).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_hop_a_fault_revealed_once_is_unstable_not_planned() {
    let chaos = Chaos::new();
    let falls_back = Arc::new(AtomicU32::new(0));
    // The first time the cache fails, the price is read from the database; after that,
    // a default: what the fault revealed does not happen again.
    let found = Explore::new(&chaos)
        .faults("cache", ["error unavailable"])
        .unwrap()
        .run(in_scenario(&chaos, move |c| {
            let falls_back = falls_back.clone();
            async move {
                if c.inject("cache", "prices", async {}).await.is_err()
                    && falls_back.fetch_add(1, Ordering::SeqCst) == 0
                {
                    c.inject("db", "prices", async {}).await.ok();
                }
            }
        }))
        .await
        .unwrap();
    assert_eq!(
        found.unstable(),
        ["db prices (after cache prices × error unavailable)"],
        "{found}"
    );
    assert_eq!(found.results().len(), 1, "only the cache's plan: {found}");
}

#[tokio::test(start_paused = true)]
async fn the_map_holds_when_nothing_changed_and_shows_a_diff_when_it_did() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos).run(body(&chaos)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resilience/checkout.yaml");
    found.write_map(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("schema: chaos-resilience-map/1\n"), "{text}");
    assert!(
        text.contains(
            "  stock warehouse:\n    error unavailable: fails\n    delay 1s: tolerated\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  db prices (after cache prices × error unavailable):\n"),
        "{text}"
    );
    found.assert_map(&path);

    // A reviewed map that believed the stock check had a fallback.
    std::fs::write(
        &path,
        text.replace(
            "  stock warehouse:\n    error unavailable: fails",
            "  stock warehouse:\n    error unavailable: tolerated",
        )
        .replace("    delay 1s: tolerated\n  db prices", "  db prices"),
    )
    .unwrap();
    let why = found.check_map(&path).unwrap_err();
    assert!(
        why.contains("stock warehouse × error unavailable: the map says tolerated, the test now fails: no stock answer"),
        "{why}"
    );
    assert!(why.contains("not in the map"), "{why}");
    assert!(why.contains("CHAOS_EXPLORE=update"), "{why}");

    // A hop the map has and the test no longer reaches.
    std::fs::write(
        &path,
        format!("{text}  queue orders:\n    error unavailable: tolerated\n"),
    )
    .unwrap();
    let why = found.check_map(&path).unwrap_err();
    assert!(
        why.contains(
            "queue orders × error unavailable: in the map (tolerated), not tried this run"
        ),
        "{why}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_map_that_cannot_be_used_is_an_error_with_its_position() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos).run(body(&chaos)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.yaml");
    let why = found.check_map(&missing).unwrap_err();
    assert!(why.contains("cannot read the map"), "{why}");
    assert!(why.contains("CHAOS_EXPLORE=update"), "{why}");

    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "# a map\nschema: chaos-resilience-map/9\nhops: {}\n",
    )
    .unwrap();
    let why = found.check_map(&other).unwrap_err();
    assert!(
        why.contains(
            "other.yaml:2:1: schema `chaos-resilience-map/9` is not `chaos-resilience-map/1`"
        ),
        "{why}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "schema: chaos-resilience-map/1\nhops:\n  cache prices:\n    error unavailable: maybe\n",
    )
    .unwrap();
    let why = found.check_map(&bad).unwrap_err();
    assert!(why.contains("bad.yaml:4:"), "{why}");
    assert!(why.contains("maybe"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn plans_over_the_budget_are_named_never_dropped() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos)
        .max_plans(3)
        .run(body(&chaos))
        .await
        .unwrap();
    assert_eq!(found.results().len(), 3, "{found}");
    // The fourth single plan, and the two the cache's error revealed.
    assert_eq!(found.over_budget().len(), 3, "{found}");
    assert!(found.to_string().contains("over max_plans (3), not run: "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.yaml");
    found.write_map(&path).unwrap();
    let why = found.check_map(&path).unwrap_err();
    assert!(why.contains("not run: over max_plans (3)"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn depth_two_adds_pairs_and_one_plan_runs_alone() {
    let chaos = Chaos::new();
    let found = Explore::new(&chaos)
        .depth(2)
        .run(body(&chaos))
        .await
        .unwrap();
    // 4 singles, 4 pairs across the two hops, and what the cache's error revealed (in
    // a single and in the two pairs that start with it).
    let pair = "cache prices × delay 1s → stock warehouse × error unavailable";
    assert!(matches!(tried(&found, pair), Tried::Fails(_)), "{found}");

    let alone = Explore::new(&chaos)
        .only("stock warehouse × error unavailable")
        .run(body(&chaos))
        .await
        .unwrap();
    assert_eq!(alone.results().len(), 1, "{alone}");
    assert!(matches!(
        tried(&alone, "stock warehouse × error unavailable"),
        Tried::Fails(_)
    ));
    let err = Explore::new(&chaos)
        .only("stock warehouse")
        .run(body(&chaos))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not `HOP × FAULT`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_explorations_at_once_never_see_each_others_faults() {
    let chaos = Chaos::new();
    // Each body checks that at most one fault reached it: a plan's fault leaking into
    // another plan's run (of this exploration or another) would make two.
    let explore = |k: u32| {
        Explore::new(&chaos).run(in_scenario(&chaos, move |c| async move {
            let mut failed = 0;
            for hop in ["shared", "own"] {
                let target = if hop == "own" {
                    format!("t{k}")
                } else {
                    "all".to_owned()
                };
                for _ in 0..2 {
                    if c.inject(hop, &target, async {}).await.is_err() {
                        failed += 1;
                    }
                }
            }
            assert!(failed <= 1, "{failed} faults reached one run");
        }))
    };
    let (a, b, c, d) = tokio::join!(explore(1), explore(2), explore(3), explore(4));
    for (k, found) in [a, b, c, d].into_iter().enumerate() {
        let found = found.unwrap();
        let own = format!("own t{}", k + 1);
        let hops = found
            .hops()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert_eq!(
            hops,
            [
                "shared all",
                "shared all #2",
                own.as_str(),
                &format!("{own} #2")
            ]
        );
        assert_eq!(found.results().len(), 8, "{found}");
        assert!(
            found.results().iter().all(|r| r.tried == Tried::Tolerated),
            "{found}"
        );
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

#[tokio::test(start_paused = true)]
async fn a_hop_with_no_target_name_is_failed_at_its_own_call_only() {
    let chaos = Chaos::new();
    // The point `store` is called with no target name, then with one, then with none.
    let found = Explore::new(&chaos)
        .faults("store", ["error unavailable"])
        .unwrap()
        .run(in_scenario(&chaos, |c| async move {
            let ok = [
                c.inject("store", "", async {}).await.is_ok(),
                c.inject("store", "orders", async {}).await.is_ok(),
                c.inject("store", "", async {}).await.is_ok(),
            ];
            if ok.iter().all(|ok| *ok) {
                Ok(())
            } else {
                Err(format!("calls that succeeded: {ok:?}"))
            }
        }))
        .await
        .unwrap();
    let hops = found
        .hops()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(hops, ["store", "store orders", "store #2"], "{found}");
    let failed = |id: &str| match tried(&found, id) {
        Tried::Fails(m) => m.clone(),
        other => panic!("{id}: {other}\n{found}"),
    };
    assert_eq!(
        failed("store × error unavailable"),
        "calls that succeeded: [false, true, true]"
    );
    assert_eq!(
        failed("store orders × error unavailable"),
        "calls that succeeded: [true, false, true]"
    );
    assert_eq!(
        failed("store #2 × error unavailable"),
        "calls that succeeded: [true, true, false]"
    );
}

#[tokio::test(start_paused = true)]
async fn the_entry_hop_is_left_out_unless_asked_for() {
    let chaos = Chaos::new();
    // What a server layer does with the request the test sends, then the work it serves.
    let serve = |chaos: &Chaos| {
        let chaos = chaos.clone();
        move |s: Scenario| {
            let chaos = chaos.clone();
            async move {
                let ctx = s.context();
                let view = chaos_core::RequestView::new(chaos_core::Point::Server, "shop")
                    .context(Some(&ctx));
                if chaos.decide(&view).is_inject() {
                    return Err("the server failed".to_owned());
                }
                ctx.scope(chaos.inject("cache", "prices", async {}))
                    .await
                    .ok();
                Ok(())
            }
        }
    };
    let found = Explore::new(&chaos).run(serve(&chaos)).await.unwrap();
    let hops = found
        .hops()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(hops, ["server shop", "cache prices"], "{found}");
    assert!(
        found.results().iter().all(|r| r.hop.point != "server"),
        "{found}"
    );

    let found = Explore::new(&chaos)
        .faults("server", ["abort 503"])
        .unwrap()
        .include_entry()
        .run(serve(&chaos))
        .await
        .unwrap();
    assert!(
        matches!(tried(&found, "server shop × abort 503"), Tried::Fails(m) if m == "the server failed"),
        "{found}"
    );
}
