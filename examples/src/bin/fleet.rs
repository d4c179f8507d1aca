//! A fleet judged where it is already watched: three replicas of checkout on loopback,
//! scraped by a real Prometheus, and two experiments whose instances are found through
//! Prometheus and whose verdict is a PromQL query.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin fleet
//! ```
//!
//! It needs Prometheus (`apt-get install prometheus`; Debian's 2.42), and says so when it
//! is missing. On loopback it starts three replicas of `checkout` (each its own engine,
//! server layer and admin port) calling one `payments`, a front that spreads canary
//! traffic over them, and Prometheus scraping every admin port's `/chaos/metrics` each
//! second (temporary data directory, stopped at the end). Then:
//!
//! 1. *payments is slow* without checkout's fallback: each replica sees a third of the
//!    canaries, fewer than its rule's guard needs to judge, but the fleet-wide error rate
//!    in Prometheus is 100%: the abort condition `fleet-errors above 0.2 for 3s` fires and
//!    the rule is rolled back on all three. Verdict **aborted**.
//! 2. The same fault with the fallback in place: the same query stays at 0. Verdict
//!    **held**.
//!
//! It exits 0 when both verdicts are the expected ones.

use std::process::ExitCode;
use std::time::Duration;

use chaos_examples::fleet::{self, Fleet};
use chaos_examples::prometheus;
use chaosctl::experiment::Verdict;

#[tokio::main]
async fn main() -> ExitCode {
    if prometheus::binary().is_none() {
        eprintln!("fleet: {}", prometheus::MISSING);
        return ExitCode::FAILURE;
    }
    let (fleet, prom) = match Fleet::watched(3).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "three replicas of checkout (admin ports {}), scraped by Prometheus at {}\n",
        fleet
            .admins()
            .iter()
            .map(|a| a.port().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        prom.url()
    );
    let mut all_as_expected = true;
    for (i, (fallback, expected)) in [(false, Verdict::Aborted), (true, Verdict::Held)]
        .into_iter()
        .enumerate()
    {
        fleet.set_fallback(fallback);
        println!(
            "──── experiment {} of 2: payments slow, checkout's fallback {}",
            i + 1,
            if fallback { "on" } else { "off" }
        );
        let body = fleet::experiment(fleet.front, prom.url(), Duration::from_secs(12));
        let (verdict, _) = fleet::run(&format!("fleet-{}", i + 1), &body).await;
        let ok = verdict == expected;
        all_as_expected &= ok;
        println!(
            "{} expected {expected:?}, got {verdict:?}\n",
            if ok { "✔" } else { "✘" }
        );
        // The rule's series leave the query's 5 s window before the next baseline.
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    if fleet
        .replicas
        .iter()
        .any(|r| !r.chaos.rules().rules.is_empty())
    {
        eprintln!("fleet: rules were left behind");
        return ExitCode::FAILURE;
    }
    if all_as_expected {
        println!(
            "both verdicts as expected: Prometheus stopped the harm no replica could judge, and held the fallback"
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
