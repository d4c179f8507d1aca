//! An injection is an event on the request's span, through tracing-opentelemetry and the
//! SDK's in-memory span exporter. Its own binary: `tracing` caches per call site whether
//! anyone listens, so a test on another thread with no subscriber could hide the event
//! from this one's thread-local subscriber.

mod support;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::ChaosLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::{reqwest_client, serve};
use tower_layer::Layer as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn engine(yaml: &str) -> Chaos {
    Chaos::builder()
        .rules(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn an_injection_is_an_event_on_the_server_span() {
    let spans = InMemorySpanExporter::default();
    let tracer = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("checkout")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let chaos = engine(
        "rules: [{ id: checkout-503, point: server, match: { path: /fail }, fault: { abort: 503 } }]",
    );
    let inner = Router::new()
        .route("/fail", get(|| async { "ok" }))
        .route("/plain", get(|| async { "ok" }));
    // The server span, opened outside the chaos layer as tower-http's `TraceLayer` does.
    let app = Router::new()
        .fallback_service(ChaosLayer::new(&chaos).layer(inner))
        .layer(axum::middleware::from_fn(
            |req: Request, next: axum::middleware::Next| async move {
                let span = tracing::info_span!("request", path = %req.uri().path());
                next.run(req).instrument(span).await
            },
        ));
    let addr = serve(app, None).await;
    let c = reqwest_client();
    for path in ["/plain", "/fail"] {
        c.get(format!("http://{addr}{path}"))
            .header("x-chaos", "scenario=gameday-7")
            .send()
            .await
            .unwrap();
    }
    tracer.force_flush().unwrap();
    let finished = spans.get_finished_spans().unwrap();
    let by_path = |p: &str| {
        finished
            .iter()
            .find(|s| {
                s.name == "request"
                    && s.attributes.iter().any(|kv| {
                        kv.key == Key::new("path") && kv.value == Value::from(p.to_owned())
                    })
            })
            .unwrap_or_else(|| panic!("no span for {p}: {finished:?}"))
    };
    assert!(
        by_path("/plain").events.is_empty(),
        "nothing injected, nothing on the span"
    );
    let events = &by_path("/fail").events.events;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.name, "fault injected");
    let attr = |k: &str| {
        e.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("rule").as_deref(), Some("checkout-503"));
    assert_eq!(attr("fault").as_deref(), Some("abort 503"));
    assert_eq!(attr("point").as_deref(), Some("server"));
    assert_eq!(attr("scope").as_deref(), Some("gameday-7"));
    drop(spans);
}
