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

/// What one test's thread logs, read through the binary's one global subscriber.
///
/// Never `set_default`: tracing caches, per callsite, whether anyone listens, and while one
/// subscriber is registered it asks the default of whichever thread hits the callsite
/// first. A test beside a capturing one, with no subscriber of its own, would fix the
/// answer at "never" and the capture would read nothing.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capture of the thread that logs, if it holds one.
struct ThisThread;

impl std::io::Write for ThisThread {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with_borrow(|logs| {
            if let Some(logs) = logs {
                logs.0.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What this thread logs while it is held; see [`Logs::capture`].
#[must_use = "the capture ends when this is dropped"]
pub struct Capture(Logs);

impl std::ops::Deref for Capture {
    type Target = Logs;
    fn deref(&self) -> &Logs {
        &self.0
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.set(None);
    }
}

impl Logs {
    /// Reads what this thread logs (no colours) until the guard drops. Use it on a
    /// `current_thread` runtime, where everything a test drives runs on its own thread.
    pub fn capture() -> Capture {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let global = tracing_subscriber::fmt()
                .with_writer(|| ThisThread)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(global)
                .expect("a binary that captures logs sets no other global subscriber");
        });
        let logs = Logs::default();
        CAPTURE.set(Some(logs.clone()));
        Capture(logs)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
