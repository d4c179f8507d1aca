//! A fallback verified under injected faults, with chaos-reqwest.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin reqwest-fallback
//! ```
//!
//! `product` is an axum service whose page asks `recommendations` (a second local
//! service) for suggestions through a reqwest client with retries (two, on transient
//! failures) and a 250 ms timeout, and falls back to a fixed list when that fails. The
//! chaos middleware sits inside retry, so every attempt can be failed.
//!
//! Each check installs one rule for as long as it runs, scoped to a fresh scenario tag,
//! sends a tagged page request, and verifies what the caller got and what chaos injected,
//! while an untagged request at the same moment must be untouched. It is the shape of an
//! integration test that proves a fallback: the program exits 1 if any outcome differs.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_core::rules::{Abort, BodyFault, Delay, DropKind, ErrorKind, Fault, Rule};
use chaos_core::testing::Scenario;
use chaos_reqwest::{ChaosMiddleware, ChaosRetryableStrategy};
use chaos_tower::ChaosLayer;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use tower_layer::Layer;

const TIMEOUT: Duration = Duration::from_millis(250);
const FALLBACK: &str = "bestsellers";

/// The dependency: personalised suggestions.
fn recommendations() -> Router {
    Router::new().route(
        "/suggest",
        get(|| async { r#"["hiking boots","rain jacket","trail map"]"# }),
    )
}

/// The page: suggestions from `recommendations`, or the fallback.
fn product(recs: SocketAddr, client: ClientWithMiddleware) -> Router {
    Router::new()
        .route("/product/7", get(page))
        .with_state((recs, client))
}

async fn page(State((recs, client)): State<(SocketAddr, ClientWithMiddleware)>) -> String {
    let live = async {
        let res = client
            .get(format!("http://{recs}/suggest"))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        let list: Vec<String> = res.json().await.ok()?;
        Some(list.join(", "))
    };
    match live.await {
        Some(list) => format!("live: {list}"),
        None => format!("fallback: {FALLBACK}"),
    }
}

/// reqwest with retries (chaos-aware strategy), and chaos inside them; one timeout for
/// reqwest and the middleware.
fn client(chaos: &Chaos) -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(5), Duration::from_millis(20))
        .build_with_max_retries(2);
    ChaosMiddleware::client(chaos, "recommendations")
        .timeout(TIMEOUT)
        .reqwest(|b| b.no_proxy())
        .with(RetryTransientMiddleware::new_with_policy_and_strategy(
            policy,
            ChaosRetryableStrategy::default(),
        ))
        .build()
        .expect("reqwest client")
}

async fn serve(app: Router, layer: ChaosLayer) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let svc = layer.layer(app);
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(svc),
        )
        .await;
    });
    Ok(addr)
}

struct Check {
    name: &'static str,
    fault: Fault,
    first: Option<u32>,
    /// The page the tagged request must get.
    expect_fallback: bool,
    /// Injections expected: one per attempt that was failed.
    expect_injected: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => {
            println!("\nevery fallback held");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let chaos = Chaos::new();
    let recs = serve(recommendations(), ChaosLayer::new(&Chaos::new())).await?;
    let product = serve(product(recs, client(&chaos)), ChaosLayer::new(&chaos)).await?;
    let browser = reqwest::Client::builder().no_proxy().build()?;
    let get = |tag: Option<String>| {
        let mut req = browser.get(format!("http://{product}/product/7"));
        if let Some(t) = tag {
            req = req.header("x-chaos", t);
        }
        async move { req.send().await?.text().await }
    };

    let checks = [
        Check {
            name: "recommendations refuse connections",
            fault: Fault::Error(ErrorKind::Unavailable),
            first: None,
            expect_fallback: true,
            expect_injected: 3,
        },
        Check {
            name: "recommendations answer 503",
            fault: Fault::Abort(Abort::http(503)),
            first: None,
            expect_fallback: true,
            expect_injected: 3,
        },
        Check {
            name: "recommendations hang",
            fault: Fault::Drop(DropKind::Hang),
            first: None,
            expect_fallback: true,
            expect_injected: 3,
        },
        Check {
            name: "recommendations are slower than the timeout",
            fault: Fault::Delay(Delay::Fixed(Duration::from_secs(2))),
            first: None,
            expect_fallback: true,
            expect_injected: 3,
        },
        Check {
            name: "the response body is cut after 10 bytes",
            fault: Fault::Body(BodyFault::TruncateAfter(10)),
            first: None,
            expect_fallback: true,
            expect_injected: 1,
        },
        Check {
            name: "two blips, then the retry succeeds",
            fault: Fault::Error(ErrorKind::Unavailable),
            first: Some(2),
            expect_fallback: false,
            expect_injected: 2,
        },
    ];

    println!(
        "{:<46} {:<32} {:>8}  {:<10} result",
        "fault at the client point", "page", "injected", "untagged"
    );
    println!("{}", "-".repeat(110));
    let mut all_ok = true;
    for check in checks {
        let scenario = Scenario::fresh();
        let mut rule = Rule::new("recs-fault", "client", check.fault)
            .with_target("recommendations")
            .with_match(scenario.matcher());
        if let Some(n) = check.first {
            rule = rule.with_first(n);
        }
        // The rule lives as long as this guard: this check only.
        let _guard = chaos.install(rule)?;
        let (tagged, untagged) = tokio::join!(get(Some(scenario.header_value())), get(None));
        let (tagged, untagged) = (tagged?, untagged?);
        let injected = chaos.journal_for(scenario.name()).len();
        let fell_back = tagged.starts_with("fallback");
        let ok = fell_back == check.expect_fallback
            && injected == check.expect_injected
            && untagged.starts_with("live");
        all_ok &= ok;
        println!(
            "{:<46} {:<32} {:>8}  {:<10} {}",
            check.name,
            truncate(&tagged, 32),
            injected,
            if untagged.starts_with("live") {
                "live"
            } else {
                "HIT"
            },
            if ok { "as expected" } else { "UNEXPECTED" }
        );
    }
    Ok(all_ok)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(n - 1).collect();
        format!("{cut}…")
    }
}
