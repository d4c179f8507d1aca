//! How fast the explorer goes over the demo's checkout: plans per second at 1, 4 and 16
//! plans at a time, each a checkout of its own on one engine (as `tests/explore.rs`, less
//! the planted hop with no timeout, whose hang would only measure the time limit).
//! The three settings are interleaved over five rounds, and the medians printed.
//!
//! ```not_rust
//! cargo run --release -p chaos-examples --bin explore-speed
//! ```

use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::testing::Explore;
use chaos_examples::checkout::{self, Setup};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    const AT_ONCE: [usize; 3] = [1, 4, 16];
    let mut rates = vec![Vec::new(); AT_ONCE.len()];
    let mut plans = 0;
    for _round in 0..5 {
        for (i, n) in AT_ONCE.into_iter().enumerate() {
            let chaos = Chaos::new();
            let engine = chaos.clone();
            let found = Explore::new(&chaos)
                .faults(
                    "client",
                    ["abort 503", "abort 500", "drop reset", "drop hang"],
                )
                .and_then(|e| {
                    e.faults(
                        "sql",
                        [
                            "error sqlstate:40001",
                            "error unavailable",
                            "error timeout",
                            "delay 300ms",
                        ],
                    )
                })
                .expect("known faults")
                .concurrency(n)
                .time_limit(Duration::from_secs(3))
                .run(move |s| checkout::order_taken(engine.clone(), Setup::default(), s))
                .await
                .expect("checkout passes without faults");
            plans = found.results().len();
            rates[i].push(plans as f64 / found.took().as_secs_f64());
        }
    }
    println!("{plans} plans over the demo's checkout, medians of 5 interleaved rounds:");
    for (n, mut r) in AT_ONCE.into_iter().zip(rates) {
        r.sort_by(f64::total_cmp);
        println!("  {n:>2} at a time: {:.1} plans/s", r[r.len() / 2]);
    }
}
