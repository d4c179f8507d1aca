//! The quick-start demo: two services on loopback, chaos rules selected per request.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin quickstart
//! ```
//!
//! * `prices` is an axum service behind the chaos server layer (target `prices`).
//! * `checkout` is an axum service behind the chaos server layer (target `checkout`). Its
//!   handler calls `prices` with reqwest (300 ms timeout) through chaos-reqwest's
//!   middleware and falls back to a cached price when the call fails. The middleware
//!   forwards the request's chaos context (`x-chaos`, `x-test-traffic`) on the call, so a
//!   scenario chosen at the edge reaches `prices`.
//! * checkout's admin API listens on a second port.
//!
//! Both load `examples/quickstart.yaml`. The demo sends normal and tagged requests, a
//! signed directive and an unsigned one, then flips the kill switch through the admin API,
//! and prints what was injected, what the caller saw and whether the fallback answered.
//! It exits 1 if any outcome is not the expected one.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::RuleSet;
use chaos_core::{Chaos, Event};
use chaos_reqwest::ChaosMiddleware;
use chaos_tower::ChaosLayer;
use chaos_tower::admin::AdminService;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::sync::broadcast::Receiver;
use tower_layer::Layer;

const SIGNING_KEY: &str = "quickstart-signing-key";
const ADMIN_TOKEN: &str = "quickstart-admin-token-0123456789";

/// The `prices` service: always 42.00, unless chaos says otherwise.
fn prices_app() -> Router {
    Router::new().route("/price", get(|| async { "42.00" }))
}

/// The `checkout` service: asks `prices`, falls back to a cached price.
fn checkout_app(prices: SocketAddr, chaos: &Chaos) -> Router {
    let timeout = Duration::from_millis(300);
    let reqwest = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("reqwest client");
    let http = ClientBuilder::new(reqwest)
        .with(
            ChaosMiddleware::builder(chaos)
                .target("prices")
                .timeout(timeout)
                .build(),
        )
        .build();
    Router::new()
        .route("/checkout", get(checkout))
        .with_state((http, prices))
}

async fn checkout(
    State((http, prices)): State<(ClientWithMiddleware, SocketAddr)>,
) -> impl IntoResponse {
    // The middleware carries this request's chaos context on to `prices`.
    let live = match http.get(format!("http://{prices}/price")).send().await {
        Ok(res) if res.status().is_success() => res.text().await.ok(),
        _ => None,
    };
    match live {
        Some(price) => (
            StatusCode::OK,
            [("x-fallback", "no")],
            format!("price {price} (live)"),
        ),
        None => (
            StatusCode::OK,
            [("x-fallback", "yes")],
            "price 40.00 (cached)".to_owned(),
        ),
    }
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

fn engine(rules: &RuleSet) -> Chaos {
    let chaos = Chaos::builder()
        .signing_keys(SigningKeys::new(SIGNING_KEY))
        .build()
        .expect("engine");
    chaos.replace(rules.clone()).expect("rules");
    chaos
}

/// What the engines injected since the last call.
fn injected(events: &mut [&mut Receiver<Event>]) -> String {
    let mut out = Vec::new();
    for rx in events.iter_mut() {
        while let Ok(e) = rx.try_recv() {
            if let Event::Injected {
                rule,
                fault,
                target,
                shadow: false,
                ..
            } = e
            {
                out.push(format!("{rule}: {fault} @ {target}"));
            }
        }
    }
    if out.is_empty() {
        "-".to_owned()
    } else {
        out.join("; ")
    }
}

struct Row {
    request: String,
    injected: String,
    saw: String,
    fallback: String,
    ok: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/quickstart.yaml");
    let rules = RuleSet::from_file(path)?;

    let prices_chaos = engine(&rules);
    let checkout_chaos = engine(&rules);
    let prices = serve(
        prices_app(),
        ChaosLayer::builder(&prices_chaos).target("prices").build(),
    )
    .await?;
    let checkout_layer = ChaosLayer::builder(&checkout_chaos)
        .target("checkout")
        .build();
    let checkout = serve(
        checkout_app(prices, &checkout_chaos),
        checkout_layer.clone(),
    )
    .await?;

    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin = admin_listener.local_addr()?;
    let admin_svc = AdminService::new(&checkout_chaos, ADMIN_TOKEN);
    tokio::spawn(async move {
        let _ = axum::serve(admin_listener, Router::new().fallback_service(admin_svc)).await;
    });

    println!("prices on {prices}, checkout on {checkout}, checkout admin on {admin}");
    println!("rules: {path}\n");

    let mut prices_events = prices_chaos.subscribe();
    let mut checkout_events = checkout_chaos.subscribe();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let keys = SigningKeys::new(SIGNING_KEY);
    let directive = "abort=503;target=prices";
    let signature = keys.sign(directive, SystemTime::now() + Duration::from_secs(600));

    // (label, headers, expect fallback? None = expect a connection error)
    let plain: Vec<(&str, String)> = vec![];
    let cases: Vec<(&str, Vec<(&str, String)>, Option<bool>)> = vec![
        ("normal request", plain.clone(), Some(false)),
        ("normal request", plain.clone(), Some(false)),
        (
            "x-chaos: scenario=prices-slow",
            vec![("x-chaos", "scenario=prices-slow".into())],
            Some(true),
        ),
        (
            "x-chaos: scenario=prices-down",
            vec![
                ("x-chaos", "scenario=prices-down".into()),
                ("x-test-traffic", "1".into()),
            ],
            Some(true),
        ),
        (
            "x-chaos: scenario=checkout-reset",
            vec![("x-chaos", "scenario=checkout-reset".into())],
            None,
        ),
        (
            "unsigned x-chaos: abort=503;target=prices",
            vec![("x-chaos", directive.into())],
            Some(false),
        ),
        (
            "signed x-chaos: abort=503;target=prices",
            vec![
                ("x-chaos", directive.into()),
                ("x-chaos-signature", signature),
            ],
            Some(true),
        ),
    ];

    let mut rows = Vec::new();
    let mut send = async |label: &str, headers: &[(&str, String)], expect: Option<bool>| -> Row {
        let mut req = client.get(format!("http://{checkout}/checkout"));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let (saw, fallback) = match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let fb = res
                    .headers()
                    .get("x-fallback")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                let body = res.text().await.unwrap_or_default();
                (format!("{status} {body}"), fb)
            }
            Err(e) => (
                format!(
                    "connection error ({})",
                    if e.is_request() {
                        "no response"
                    } else {
                        "other"
                    }
                ),
                "-".to_owned(),
            ),
        };
        let ok = match expect {
            Some(true) => saw.starts_with("200") && fallback == "yes",
            Some(false) => saw.starts_with("200") && fallback == "no",
            None => saw.starts_with("connection error"),
        };
        Row {
            request: label.to_owned(),
            injected: injected(&mut [&mut prices_events, &mut checkout_events]),
            saw,
            fallback,
            ok,
        }
    };
    for (label, headers, expect) in &cases {
        rows.push(send(label, headers, *expect).await);
    }

    // The big red button, through the admin API: tagged requests pass untouched.
    let kill = client
        .post(format!("http://{admin}/chaos/kill"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let killed = kill.status().is_success();
    let mut row = send(
        "POST /chaos/kill, then scenario=checkout-reset",
        &[("x-chaos", "scenario=checkout-reset".into())],
        Some(false),
    )
    .await;
    row.ok &= killed;
    rows.push(row);

    let w = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (
        w(|r| &r.request, "request"),
        w(|r| &r.injected, "injected"),
        w(|r| &r.saw, "caller saw"),
    );
    println!(
        "{:<w0$}  {:<w1$}  {:<w2$}  {:<8}  result",
        "request", "injected", "caller saw", "fallback"
    );
    println!("{}", "-".repeat(w0 + w1 + w2 + 26));
    for r in &rows {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<8}  {}",
            r.request,
            r.injected,
            r.saw,
            r.fallback,
            if r.ok { "as expected" } else { "UNEXPECTED" }
        );
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    let seen = checkout_layer
        .steady_state()
        .snapshot(Duration::from_secs(60));
    println!(
        "\ncheckout steady state: {} organic responses ({} errors), {} injected",
        seen.requests, seen.errors, seen.injected
    );
    if failed > 0 {
        println!("{failed} outcome(s) were not the expected ones");
        std::process::exit(1);
    }
    println!("every outcome was the expected one");
    Ok(())
}
