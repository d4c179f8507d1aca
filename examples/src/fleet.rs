//! A fleet on loopback: replicas of `checkout`, each its own process-like unit (its own
//! engine, server layer and admin port), calling one `payments` through the chaos
//! middleware, behind a front that spreads requests over them round-robin; and the
//! experiments that judge it through Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_reqwest::ChaosMiddleware;
use chaos_tower::ChaosLayer;
use chaos_tower::admin::AdminService;
use chaosctl::experiment::Verdict;
use http::{HeaderMap, StatusCode};
use reqwest_middleware::ClientWithMiddleware;
use tower_layer::Layer;

/// The admin token of every replica (Prometheus scrapes with it too).
pub const TOKEN: &str = "fleet-admin-token-0123456789";

/// The rule the experiments inject: every call to payments is 300 ms slow, past
/// checkout's 150 ms budget for it.
pub const RULE: &str = "payments-slow";

/// How long checkout waits for payments.
const PAY_TIMEOUT: Duration = Duration::from_millis(150);

/// One replica of checkout.
#[derive(Debug)]
pub struct Replica {
    /// Its engine.
    pub chaos: Chaos,
    /// Where it serves.
    pub app: SocketAddr,
    /// Its admin API (and `/chaos/metrics`).
    pub admin: SocketAddr,
}

/// The fleet.
#[derive(Debug)]
pub struct Fleet {
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The front that spreads requests over the first replicas given to it.
    pub front: SocketAddr,
    /// Whether checkout answers "pay later" when payments fails.
    fallback: Arc<AtomicBool>,
    payments: SocketAddr,
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Checkout {
    client: ClientWithMiddleware,
    payments: SocketAddr,
    fallback: Arc<AtomicBool>,
}

async fn checkout(State(c): State<Arc<Checkout>>) -> (StatusCode, &'static str) {
    let paid = c
        .client
        .get(format!("http://{}/pay", c.payments))
        .send()
        .await;
    match paid {
        Ok(r) if r.status().is_success() => (StatusCode::OK, "paid"),
        _ if c.fallback.load(Ordering::Relaxed) => (StatusCode::OK, "pay later"),
        _ => (StatusCode::BAD_GATEWAY, "payments failed"),
    }
}

impl Fleet {
    /// `n` replicas behind a front; checkout's fallback off.
    pub async fn start(n: usize) -> Fleet {
        let payments = serve(Router::new().route("/pay", get(|| async { "paid" }))).await;
        let fallback = Arc::new(AtomicBool::new(false));
        let mut replicas = Vec::new();
        for _ in 0..n {
            replicas.push(replica(payments, fallback.clone()).await);
        }
        let front = front(replicas.iter().map(|r| r.app).collect()).await;
        Fleet {
            replicas,
            front,
            fallback,
            payments,
        }
    }

    /// One more replica, not behind the front (as a new instance coming up in the job).
    pub async fn add_replica(&mut self) -> &Replica {
        let r = replica(self.payments, self.fallback.clone()).await;
        self.replicas.push(r);
        self.replicas.last().expect("just added")
    }

    /// Turns checkout's "pay later" fallback on or off on every replica.
    pub fn set_fallback(&self, on: bool) {
        self.fallback.store(on, Ordering::Relaxed);
    }

    /// `n` replicas, and a Prometheus scraping them, ready once every replica's last
    /// scrape succeeded.
    ///
    /// # Errors
    ///
    /// When Prometheus is missing, does not start, or does not scrape them all in 30 s.
    pub async fn watched(n: usize) -> Result<(Fleet, crate::prometheus::Prometheus), String> {
        let fleet = Fleet::start(n).await;
        let prom = crate::prometheus::Prometheus::start(&fleet.admins(), TOKEN).await?;
        prom.wait_up(n).await?;
        Ok((fleet, prom))
    }

    /// The admin endpoints.
    pub fn admins(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.admin).collect()
    }
}

async fn replica(payments: SocketAddr, fallback: Arc<AtomicBool>) -> Replica {
    let chaos = Chaos::new();
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(PAY_TIMEOUT)
            .build()
            .expect("a client"),
    )
    .with(
        ChaosMiddleware::builder(&chaos)
            .target("payments")
            .timeout(PAY_TIMEOUT)
            .build(),
    )
    .build();
    let state = Arc::new(Checkout {
        client,
        payments,
        fallback,
    });
    let app = Router::new()
        .route("/checkout", get(checkout))
        .with_state(state);
    let layer = ChaosLayer::builder(&chaos).target("checkout").build();
    let app = serve(Router::new().fallback_service(layer.layer(app))).await;
    let admin = serve(Router::new().fallback_service(AdminService::new(&chaos, TOKEN))).await;
    Replica { chaos, app, admin }
}

/// Forwards each request to the next replica, with its chaos headers.
async fn front(replicas: Vec<SocketAddr>) -> SocketAddr {
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let app = Router::new().route(
        "/checkout",
        get(move |headers: HeaderMap| {
            let (next, http, replicas) = (next.clone(), http.clone(), replicas.clone());
            async move {
                let to = replicas[next.fetch_add(1, Ordering::Relaxed) % replicas.len()];
                let mut req = http.get(format!("http://{to}/checkout"));
                for name in ["x-chaos", "x-chaos-signature", "x-test-traffic"] {
                    if let Some(v) = headers.get(name) {
                        req = req.header(name, v);
                    }
                }
                match req.send().await {
                    Ok(r) => {
                        StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
                    }
                    Err(_) => StatusCode::BAD_GATEWAY,
                }
            }
        }),
    );
    serve(app).await
}

/// The fleet-wide error rate of the requests the experiment's rule touched: the
/// experiment cohort, summed over every replica by Prometheus.
pub const FLEET_ERRORS: &str = "sum(rate(chaos_cohort_errors_total{rule=\"payments-slow\",cohort=\"experiment\"}[5s])) / sum(rate(chaos_cohort_requests_total{rule=\"payments-slow\",cohort=\"experiment\"}[5s]))";

/// The abort condition's `for`.
pub const ABORT_FOR: Duration = Duration::from_secs(3);

/// The experiment: payments slow for canary traffic across the fleet, judged by
/// Prometheus. The rule's own guard wants 200 requests in its window, which no replica
/// sees (each gets a third of 30 canaries a second): only the fleet can judge it.
pub fn experiment(front: SocketAddr, prometheus: &str, duration: Duration) -> String {
    format!(
        r#"title: Checkout survives a slow payments service, fleet-wide
hypothesis: If payments is slow for canary traffic on every replica, checkout still answers without errors.
baseline: 3s
recovery: 6s
prometheus: {{ url: "{prometheus}", interval: 1s }}
steady_state:
  probes:
    - name: checkout
      url: http://{front}/checkout
      rate: 30
      tolerance: {{ error_rate_below: 100% }}
  queries:
    - name: fleet-errors
      query: '{FLEET_ERRORS}'
      below: 0.05
  cohorts: {{ error_rate_below: 50%, from: prometheus }}
method:
  admins_from: {{ prometheus_job: {job} }}
  rules:
    - id: {RULE}
      point: client
      target: payments
      fault: {{ delay: 300ms }}
      guard: {{ error_rate_above: 10%, min_requests: 200, window: 30s }}
  duration: {duration}s
abort:
  - {{ query: fleet-errors, above: 0.2, for: {for_}s }}
"#,
        job = crate::prometheus::JOB,
        duration = duration.as_secs(),
        for_ = ABORT_FOR.as_secs(),
    )
}

/// Runs an experiment on the fleet (its YAML) as `chaosctl run` does: the verdict and the
/// JSON report.
pub async fn run(name: &str, body: &str) -> (Verdict, serde_json::Value) {
    crate::run_experiment(name, body, TOKEN).await
}

/// The ready PromQL queries of a page (the guide's Dashboards chapter), in order, with
/// their comments dropped.
pub fn ready_queries(page: &str) -> Vec<String> {
    let Some(start) = page.find("```promql\n") else {
        return Vec::new();
    };
    let block = &page[start + "```promql\n".len()..];
    let block = &block[..block.find("```").unwrap_or(block.len())];
    block
        .split("\n\n")
        .map(|q| {
            q.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|q| !q.trim().is_empty())
        .collect()
}
