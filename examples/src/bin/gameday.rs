//! A GameDay in under a minute: three experiments on a small real system, each to its
//! verdict.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin gameday
//! ```
//!
//! On loopback it starts `checkout` (axum, behind chaos-tower's server layer, with the
//! admin API on a second port), which for every order
//!
//! * reads the stock from `inventory` (SQLite through chaos-sqlx) within 100 ms, and
//!   answers from its cache of the last stock it read when the read is **slow**;
//! * charges through `payments` (a second axum service) with reqwest: one retry, a
//!   150 ms timeout, a circuit breaker (the `failsafe` crate), and "pay later" when the
//!   charge does not go through.
//!
//! Then it runs three experiments through the runner `chaosctl run` uses, each scoped to
//! its own scenario, so only its canary requests are touched:
//!
//! 1. *payments is slow*: the fallback works. Verdict **held**.
//! 2. *inventory drops its connections*, guarded: checkout has no answer for that, and the
//!    rule's guard aborts it within a tick, before more users notice. Verdict **aborted**.
//! 3. *inventory reports serialization failures*, unguarded: checkout turns them into
//!    500s. Verdict **refuted**: the missing fallback is the finding a GameDay is for.
//!
//! It exits 0 when each verdict is the expected one. The per-request scenario selection,
//! signed directives and the kill switch are shown by the `quickstart` program.

use std::net::SocketAddr;
use std::process::ExitCode;

use chaos_core::Chaos;
use chaos_examples::checkout::{self, Setup, System, TOKEN};
use chaosctl::experiment::Verdict;

/// One experiment file, written where the runner reads it.
fn experiment(
    title: &str,
    hypothesis: &str,
    checkout: SocketAddr,
    admin: SocketAddr,
    rule: &str,
) -> String {
    format!(
        "title: {title}
hypothesis: {hypothesis}
owner: team-checkout
baseline: 2s
recovery: 2s
steady_state:
  probes:
    - name: order
      url: http://{checkout}/order
      rate: 25
      tolerance: {{ status: 2xx, error_rate_below: 1%, p99_below: 500ms }}
method:
  admins: [http://{admin}]
  duration: 4s
  rules:
    - {rule}
"
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let chaos = Chaos::new();
    let (checkout, admin) = match checkout::start(&chaos, Setup::default()).await {
        Ok(System {
            checkout, admin, ..
        }) => (checkout, admin),
        Err(e) => {
            eprintln!("gameday: cannot start the system: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("checkout on http://{checkout}/order, its admin API on http://{admin}\n");
    let runs = [
        (
            experiment(
                "Payments is slow",
                "If payments takes 400 ms for canary traffic, checkout still answers 2xx within 500 ms.",
                checkout,
                admin,
                "{ id: payments-slow, point: client, target: payments, fault: { delay: 400ms } }",
            ),
            Verdict::Held,
        ),
        (
            experiment(
                "Inventory drops its connections",
                "If inventory resets connections for canary traffic, checkout still answers 2xx.",
                checkout,
                admin,
                "{ id: inventory-reset, point: sql, target: inventory, fault: { drop: reset }, guard: { error_rate_above: 10%, min_requests: 10, window: 2s } }",
            ),
            Verdict::Aborted,
        ),
        (
            experiment(
                "Inventory reports serialization failures",
                "If inventory fails a read with SQLSTATE 40001 for canary traffic, checkout still answers 2xx.",
                checkout,
                admin,
                "{ id: inventory-serialization, point: sql, target: inventory, fault: { error: \"sqlstate:40001\" } }",
            ),
            Verdict::Refuted,
        ),
    ];
    let mut all_as_expected = true;
    for (i, (body, expected)) in runs.iter().enumerate() {
        println!("──── experiment {} of {}", i + 1, runs.len());
        let (verdict, _) =
            chaos_examples::run_experiment(&format!("experiment-{}", i + 1), body, TOKEN).await;
        let ok = verdict == *expected;
        all_as_expected &= ok;
        println!(
            "{} expected {expected:?}, got {verdict:?}\n",
            if ok { "✔" } else { "✘" }
        );
    }
    if !chaos.rules().rules.is_empty() {
        eprintln!("gameday: rules were left behind: {:?}", chaos.rules().rules);
        return ExitCode::FAILURE;
    }
    if all_as_expected {
        println!(
            "every verdict as expected: the fallback held, the guard stopped an unhandled fault, and the missing fallback was found"
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
