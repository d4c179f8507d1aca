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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_reqwest::{ChaosMiddleware, ChaosRetryableStrategy};
use chaos_sqlx::ChaosPool;
use chaos_tower::ChaosLayer;
use chaos_tower::admin::AdminService;
use chaosctl::experiment::Verdict;
use failsafe::futures::CircuitBreaker as _;
use http::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;
use tower_layer::Layer;

const PAY_TIMEOUT: Duration = Duration::from_millis(150);
const STOCK_BUDGET: Duration = Duration::from_millis(100);
const TOKEN: &str = "gameday-admin-token-0123456789";

type Breaker = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

struct Checkout {
    payments: SocketAddr,
    client: ClientWithMiddleware,
    breaker: Breaker,
    inventory: ChaosPool<Sqlite>,
    stock_cache: Mutex<HashMap<i64, i64>>,
}

impl Checkout {
    /// The stock of `sku`: from inventory within the budget; from the cache when the read
    /// is slow. An error from inventory is not handled: that is the bug to find.
    async fn stock(&self, sku: i64) -> Result<i64, String> {
        let read = sqlx::query_scalar::<_, i64>("SELECT stock FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.inventory);
        match tokio::time::timeout(STOCK_BUDGET, read).await {
            Ok(Ok(n)) => {
                if let Ok(mut c) = self.stock_cache.lock() {
                    c.insert(sku, n);
                }
                Ok(n)
            }
            Ok(Err(e)) => Err(format!("inventory: {e}")),
            Err(_) => self
                .stock_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&sku).copied())
                .ok_or_else(|| "inventory is slow and nothing is cached".to_owned()),
        }
    }

    /// Charges, or "pay later" when payments cannot (slow, failing, breaker open).
    async fn charge(&self) -> &'static str {
        let call = async {
            self.client
                .post(format!("http://{}/charge", self.payments))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .error_for_status()
                .map_err(|e| e.to_string())
        };
        match self.breaker.call(call).await {
            Ok(_) => "charged",
            Err(_) => "pay later",
        }
    }
}

async fn order(State(c): State<Arc<Checkout>>) -> (StatusCode, String) {
    match c.stock(7).await {
        Ok(n) if n > 0 => (StatusCode::OK, format!("ordered, {}", c.charge().await)),
        Ok(_) => (StatusCode::CONFLICT, "out of stock".into()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn serve(app: Router, layer: Option<ChaosLayer>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = match layer {
            Some(l) => {
                let svc = l.layer(app);
                axum::serve(
                    listener,
                    axum::ServiceExt::<axum::extract::Request>::into_make_service(svc),
                )
                .await
            }
            None => axum::serve(listener, app).await,
        };
    });
    Ok(addr)
}

/// The system: payments, and checkout (with its inventory and admin API).
async fn system(chaos: &Chaos) -> Result<(SocketAddr, SocketAddr), Box<dyn std::error::Error>> {
    let payments = serve(
        Router::new().route("/charge", axum::routing::post(|| async { "charged" })),
        None,
    )
    .await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect("sqlite::memory:")
        .await?;
    let inventory = ChaosPool::new(pool, chaos, "inventory");
    sqlx::query("CREATE TABLE stock (sku INTEGER PRIMARY KEY, stock INTEGER NOT NULL)")
        .execute(&inventory)
        .await?;
    sqlx::query("INSERT INTO stock VALUES (7, 1000)")
        .execute(&inventory)
        .await?;
    // One timeout for reqwest and the middleware, so it cuts an injected delay as it
    // would a slow payments service's answer.
    let client = ChaosMiddleware::client(chaos, "payments")
        .timeout(PAY_TIMEOUT)
        .reqwest(|b| b.no_proxy())
        .with(RetryTransientMiddleware::new_with_policy_and_strategy(
            ExponentialBackoff::builder()
                .retry_bounds(Duration::from_millis(5), Duration::from_millis(10))
                .build_with_max_retries(1),
            ChaosRetryableStrategy::default(),
        ))
        .build()?;
    let breaker = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            5,
            failsafe::backoff::constant(Duration::from_millis(500)),
        ))
        .build();
    let checkout = Arc::new(Checkout {
        payments,
        client,
        breaker,
        inventory,
        stock_cache: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/order", get(order))
        .with_state(checkout);
    let layer = ChaosLayer::builder(chaos).target("checkout").build();
    let addr = serve(app, Some(layer)).await?;
    let admin = serve(
        Router::new().fallback_service(AdminService::new(chaos, TOKEN)),
        None,
    )
    .await?;
    Ok((addr, admin))
}

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
    let (checkout, admin) = match system(&chaos).await {
        Ok(a) => a,
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
