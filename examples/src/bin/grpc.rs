//! The chaos layers on a tonic server and a tonic client.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin grpc
//! ```
//!
//! A `grpc.health.v1.Health` server behind [`ChaosLayer`] (`Server::builder().layer(..)`),
//! and a `HealthClient` over a `Channel` wrapped in [`ChaosClientLayer`]. Each call's
//! scenario rides in the request's extensions; the client layer decides with it and
//! forwards it to the server as `x-chaos`. Faults reach the
//! client as gRPC statuses: a server-side `abort: "grpc:14"` is a trailers-only
//! `UNAVAILABLE`, a client-side `drop: reset` is an `UNAVAILABLE` too (what a broken
//! connection looks like to tonic), a delay past the deadline is `CANCELLED`.

use std::time::Duration;

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext};
use chaos_tower::{ChaosClientLayer, ChaosLayer};
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_layer::Layer;

const RULES: &str = r#"
rules:
  - id: health-down
    point: server
    target: health
    match: { scenario: server-down }
    fault: { abort: "grpc:14" }
  - id: health-slow
    point: server
    target: health
    match: { scenario: server-slow }
    fault: { delay: 2s }
  - id: link-cut
    point: client
    target: health
    match: { scenario: link-cut }
    fault: { drop: reset }
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chaos = Chaos::new();
    chaos.replace(RuleSet::parse(Format::Yaml, RULES)?)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let server = Server::builder()
        .layer(ChaosLayer::builder(&chaos).target("health").build())
        .add_service(health)
        .serve(addr);
    tokio::spawn(server);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(ChaosClientLayer::new(&chaos, "health").layer(channel));

    let mut failures = 0;
    for (scenario, expected) in [
        (None, tonic::Code::Ok),
        (Some("server-down"), tonic::Code::Unavailable),
        (Some("server-slow"), tonic::Code::Cancelled),
        (Some("link-cut"), tonic::Code::Unavailable),
    ] {
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        req.set_timeout(Duration::from_millis(300));
        if let Some(s) = scenario {
            // The context of the call: the client layer decides with it and forwards it
            // to the server as `x-chaos`, as it would inside a handler of a served request.
            req.extensions_mut()
                .insert(ChaosContext::builder().scenario(s).build());
        }
        let code = match client.check(req).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        let ok = code == expected;
        failures += usize::from(!ok);
        println!(
            "{:<14} -> {:<12} {}",
            scenario.unwrap_or("(none)"),
            format!("{code:?}"),
            if ok { "as expected" } else { "UNEXPECTED" }
        );
    }
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
