//! The demo's checkout, as the `gameday` program runs it and the exploration showcase
//! (`tests/explore.rs`) explores it: `checkout` (axum, behind chaos-tower's server layer,
//! with the admin API on a second port), which for every order
//!
//! * reads the stock from `inventory` (SQLite through chaos-sqlx) within 100 ms, and
//!   answers from its cache of the last stock it read when the read is **slow** (an error
//!   from inventory is not handled: the finding the demo is for);
//! * charges through `payments` (a second axum service) with reqwest: one retry, a
//!   150 ms timeout, a circuit breaker (the `failsafe` crate), and "pay later" when the
//!   charge does not go through.
//!
//! [`Setup`] can take the "pay later" fallback out, and plant a third hop: a shipping
//! quote asked for with no timeout at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_core::testing::Scenario;
use chaos_reqwest::{ChaosMiddleware, ChaosRetryableStrategy};
use chaos_sqlx::ChaosPool;
use chaos_tower::ChaosLayer;
use chaos_tower::admin::AdminService;
use failsafe::futures::CircuitBreaker as _;
use http::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;
use tower_layer::Layer;

/// How long checkout waits for payments, per attempt.
pub const PAY_TIMEOUT: Duration = Duration::from_millis(150);
/// How long checkout waits for inventory before it answers from its cache.
pub const STOCK_BUDGET: Duration = Duration::from_millis(100);
/// The admin API's token.
pub const TOKEN: &str = "gameday-admin-token-0123456789";

type Breaker = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

/// How to build the system.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Answer "pay later" when payments cannot charge (the demo's fallback). Without it a
    /// failed charge is a 502.
    pub pay_later: bool,
    /// Plant a third hop: a shipping quote asked for with no timeout (a failed quote is
    /// tolerated, a hung one holds the order forever).
    pub shipping_without_timeout: bool,
}

impl Default for Setup {
    /// The demo: "pay later", no shipping quote.
    fn default() -> Setup {
        Setup {
            pay_later: true,
            shipping_without_timeout: false,
        }
    }
}

/// A running system: where to order, its admin API, and its services.
#[derive(Clone, Copy, Debug)]
pub struct System {
    /// Checkout, behind the server layer: `GET /order`.
    pub checkout: SocketAddr,
    /// Checkout's admin API (token [`TOKEN`]).
    pub admin: SocketAddr,
    /// Payments: `POST /charge`.
    pub payments: SocketAddr,
}

struct Checkout {
    payments: SocketAddr,
    client: ClientWithMiddleware,
    breaker: Breaker,
    inventory: ChaosPool<Sqlite>,
    stock_cache: Mutex<HashMap<i64, i64>>,
    pay_later: bool,
    /// The planted hop: a client with no timeout, and the shipping service.
    shipping: Option<(ClientWithMiddleware, SocketAddr)>,
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

    /// Charges: `Ok("charged")`, or when payments cannot (slow, failing, breaker open)
    /// `Ok("pay later")` with the fallback and `Err` without.
    async fn charge(&self) -> Result<&'static str, String> {
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
            Ok(_) => Ok("charged"),
            Err(_) if self.pay_later => Ok("pay later"),
            Err(e) => Err(format!("payments failed: {e}")),
        }
    }

    /// The planted hop: a shipping quote, with no timeout; a failed one is left for
    /// dispatch to work out.
    async fn ship(&self) -> &'static str {
        let Some((client, shipping)) = &self.shipping else {
            return "";
        };
        match client.get(format!("http://{shipping}/quote")).send().await {
            Ok(r) if r.status().is_success() => ", shipping quoted",
            _ => ", shipping quoted at dispatch",
        }
    }
}

async fn order(State(c): State<Arc<Checkout>>) -> (StatusCode, String) {
    match c.stock(7).await {
        Ok(n) if n > 0 => match c.charge().await {
            Ok(paid) => (StatusCode::OK, format!("ordered, {paid}{}", c.ship().await)),
            Err(e) => (StatusCode::BAD_GATEWAY, e),
        },
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

/// Starts the system on loopback, on `chaos`: payments, and checkout (with its inventory,
/// admin API and, if planted, a shipping service). Each call starts one of its own: its
/// own breaker, cache and database.
///
/// # Errors
///
/// A port cannot be bound, or the database cannot be set up.
pub async fn start(
    chaos: &Chaos,
    setup: Setup,
) -> Result<System, Box<dyn std::error::Error + Send + Sync>> {
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
    let shipping = if setup.shipping_without_timeout {
        let at = serve(
            Router::new().route("/quote", get(|| async { "4.90" })),
            None,
        )
        .await?;
        let client = ChaosMiddleware::client(chaos, "shipping")
            .reqwest(|b| b.no_proxy())
            .build()?;
        Some((client, at))
    } else {
        None
    };
    let checkout = Arc::new(Checkout {
        payments,
        client,
        breaker,
        inventory,
        stock_cache: Mutex::new(HashMap::new()),
        pay_later: setup.pay_later,
        shipping,
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
    Ok(System {
        checkout: addr,
        admin,
        payments,
    })
}

/// The body of the exploration showcase (`tests/explore.rs`) and of `explore-speed`: on a
/// checkout of its own, on `chaos`, warmed by untagged orders, one order sent as
/// `scenario`'s must be taken (a 200, "ordered, ...").
///
/// # Errors
///
/// What the caller got instead, or why the checkout could not start.
pub async fn order_taken(chaos: Chaos, setup: Setup, scenario: Scenario) -> Result<(), String> {
    let system = start(&chaos, setup).await.map_err(|e| e.to_string())?;
    let url = format!("http://{}/order", system.checkout);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    // Served before, untagged, so its stock cache is warm as a running checkout's is
    // (a first read slower than inventory's 100 ms budget on a busy machine has no cache
    // to fall back on: it is tried again).
    let mut warm = false;
    for _ in 0..20 {
        let r = http.get(&url).send().await.map_err(|e| e.to_string())?;
        if r.status() == 200 {
            warm = true;
            break;
        }
    }
    if !warm {
        return Err("checkout never took an untagged order".into());
    }
    let res = http
        .get(&url)
        .header("x-chaos", scenario.header_value())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let text = res.text().await.map_err(|e| e.to_string())?;
    if status == 200 && text.starts_with("ordered") {
        Ok(())
    } else {
        Err(format!("{status}: {text}"))
    }
}
