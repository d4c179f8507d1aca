//! Checkout and payments on loopback, serving until Ctrl-C: a service to point Chaos
//! Toolkit (`examples/chaostoolkit/`), `chaosctl` or curl at.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin checkout                 # with its "pay later" fallback
//! cargo run -p chaos-examples --bin checkout -- --no-fallback
//! ```
//!
//! `GET /checkout` calls payments through the chaos middleware (target `payments`, a
//! 150 ms budget) and answers `paid`, or, when payments fails, `pay later` (200) with
//! the fallback and `payments failed` (502) without. Checkout sits behind the server
//! layer (target `checkout`), and its admin API is on a second port. It prints the
//! environment a Chaos Toolkit run needs:
//!
//! ```text
//! export CHECKOUT_URL=http://127.0.0.1:40231/checkout
//! export CHAOS_ADMIN_URL=http://127.0.0.1:40233
//! export CHAOS_ADMIN_TOKEN=fleet-admin-token-0123456789
//! ```

use chaos_examples::fleet::{Fleet, TOKEN};

#[tokio::main]
async fn main() {
    let fallback = !std::env::args().any(|a| a == "--no-fallback");
    let fleet = Fleet::start(1).await;
    fleet.set_fallback(fallback);
    let r = &fleet.replicas[0];
    println!("export CHECKOUT_URL=http://{}/checkout", r.app);
    println!("export CHAOS_ADMIN_URL=http://{}", r.admin);
    println!("export CHAOS_ADMIN_TOKEN={TOKEN}");
    eprintln!(
        "checkout serving ({} fallback); Ctrl-C to stop",
        if fallback { "with its" } else { "without a" }
    );
    let _ = tokio::signal::ctrl_c().await;
}
