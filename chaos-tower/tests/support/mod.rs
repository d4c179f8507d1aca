//! Shared helpers: a real axum server on 127.0.0.1:0 behind the chaos layer.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, ServiceExt};
use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext};
use chaos_tower::ChaosLayer;
use tower_layer::Layer;

pub const BIG: usize = 1000;

/// What the handler saw of the chaos context.
pub async fn seen(req: Request) -> String {
    let ext = req
        .extensions()
        .get::<ChaosContext>()
        .map(|c| c.scenarios().join("+"));
    let current = ChaosContext::current().map(|c| c.scenarios().join("+"));
    let tt = ChaosContext::current().is_some_and(|c| c.is_test_traffic());
    let header = req
        .headers()
        .get("x-chaos")
        .map(|v| v.to_str().unwrap().to_owned());
    format!("ext={ext:?} current={current:?} test_traffic={tt} header={header:?}")
}

pub fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/big", get(|| async { "x".repeat(BIG) }))
        .route("/ctx", get(seen))
}

/// Serves `router` behind `layer` on a fresh loopback port.
pub async fn serve(router: Router, layer: ChaosLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = layer.layer(router);
    tokio::spawn(async move {
        axum::serve(
            listener,
            ServiceExt::<axum::extract::Request>::into_make_service(svc),
        )
        .await
        .unwrap()
    });
    addr
}

/// An engine with these YAML rules.
pub fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The active injections of a rule.
pub fn active(chaos: &Chaos, id: &str) -> u32 {
    chaos
        .snapshot()
        .rules
        .iter()
        .find(|r| r.rule.id == id)
        .map_or(0, |r| r.counters.active)
}
