//! A real tonic server and client: gRPC faults arrive as gRPC statuses.

mod support;

use std::time::Duration;

use chaos_core::Chaos;
use chaos_tower::ChaosLayer;
use support::engine;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn serve(chaos: &Chaos) -> HealthClient<Channel> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = ChaosLayer::builder(chaos).target("health").build();
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tokio_stream_shim::incoming(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

/// `TcpListener` as the stream of connections tonic wants, without tokio-stream.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub(crate) struct Incoming(tokio::net::TcpListener);

    pub(crate) fn incoming(l: tokio::net::TcpListener) -> Incoming {
        Incoming(l)
    }

    impl futures_core::Stream for Incoming {
        type Item = std::io::Result<tokio::net::TcpStream>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s)))
        }
    }
}

#[tokio::test]
async fn grpc_abort_is_a_trailers_only_unavailable() {
    let chaos = engine(
        r#"
rules:
  - id: health-down
    point: server
    target: health
    match: { path: /grpc.health.v1.Health/Check, scenario: grpc-test }
    fault: { abort: "grpc:14" }
"#,
    );
    let mut client = serve(&chaos).await;

    let ok = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");

    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.metadata_mut()
        .insert("x-chaos", "scenario=grpc-test".parse().unwrap());
    let status = client.check(req).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("health-down"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.metadata().get("x-chaos-injected").unwrap(),
        "health-down"
    );
}

#[tokio::test]
async fn http_abort_on_a_grpc_request_maps_to_a_grpc_code() {
    let chaos = engine(
        "rules: [{ id: busy, point: server, fault: { abort: { status: 429, body: slow down } } }]",
    );
    let mut client = serve(&chaos).await;
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "slow down");
}

#[tokio::test]
async fn delay_beyond_the_deadline_is_cancelled() {
    let chaos = engine("rules: [{ id: slow, point: server, fault: { delay: 2s } }]");
    let mut client = serve(&chaos).await;
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.set_timeout(Duration::from_millis(200));
    let status = client.check(req).await.unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
}

#[tokio::test]
async fn grpc_reset_is_seen_as_a_transport_failure() {
    let chaos = engine("rules: [{ id: cut, point: server, fault: { drop: reset } }]");
    let mut client = serve(&chaos).await;
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    // The HTTP/2 stream is reset with INTERNAL_ERROR: tonic reports it as Internal
    // (or Unknown), never as an answer from the service.
    assert!(
        matches!(
            status.code(),
            Code::Internal | Code::Unknown | Code::Unavailable
        ),
        "{status:?}"
    );
}
