//! Shared helpers: a real axum server on 127.0.0.1:0 (behind chaos-tower's server layer
//! where a test needs one) and reqwest clients with the chaos middleware.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::routing::{any, get};
use axum::{Json, Router, ServiceExt};
use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_reqwest::ChaosMiddleware;
use chaos_tower::ChaosLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_layer::Layer;

pub const BIG: usize = 1000;

/// How many requests reached the dependency.
#[derive(Clone, Default)]
pub struct Hits(Arc<AtomicU64>);

impl Hits {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The chaos headers the dependency received, as JSON.
async fn headers(req: Request) -> Json<serde_json::Value> {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Json(serde_json::json!({
        "x-chaos": h("x-chaos"),
        "x-chaos-signature": h("x-chaos-signature"),
        "x-test-traffic": h("x-test-traffic"),
    }))
}

/// A dependency: counts every request it gets.
pub fn dependency(hits: Hits) -> Router {
    Router::new()
        .route("/hello", any(|| async { "hello" }))
        .route(
            "/price",
            get(|| async { Json(serde_json::json!({ "price": 42 })) }),
        )
        .route("/big", get(|| async { "x".repeat(BIG) }))
        .route(
            "/fail",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow"
            }),
        )
        .route("/headers", get(headers))
        .layer(axum::middleware::from_fn_with_state(
            hits,
            |State(hits): State<Hits>, req: Request, next: axum::middleware::Next| async move {
                hits.0.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            },
        ))
}

/// Serves `router` on a fresh loopback port, behind `layer` if given.
pub async fn serve(router: Router, layer: Option<ChaosLayer>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        match layer {
            Some(l) => axum::serve(
                listener,
                ServiceExt::<Request>::into_make_service(l.layer(router)),
            )
            .await
            .unwrap(),
            None => axum::serve(listener, router).await.unwrap(),
        }
    });
    addr
}

/// A counted dependency on a fresh port.
pub async fn dependency_at() -> (SocketAddr, Hits) {
    let hits = Hits::default();
    (serve(dependency(hits.clone()), None).await, hits)
}

/// An engine with these YAML rules.
pub fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A client with the chaos middleware for `target`.
pub fn client(chaos: &Chaos, target: &str) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(ChaosMiddleware::new(chaos, target))
        .build()
}

/// The active injections of a rule.
pub fn active(chaos: &Chaos, id: &str) -> u32 {
    rule(chaos, id).active
}

/// How many times a rule injected.
pub fn injected(chaos: &Chaos, id: &str) -> u64 {
    rule(chaos, id).injected
}

fn rule(chaos: &Chaos, id: &str) -> chaos_core::RuleCounters {
    chaos
        .snapshot()
        .rules
        .iter()
        .find(|r| r.rule.id == id)
        .map(|r| r.counters)
        .unwrap_or_else(|| panic!("no rule {id}"))
}

/// The text logged to a subscriber made by [`Logs::subscriber`].
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// A subscriber (no colours) writing here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let out = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
