//! Without a meter given to the builder, the engine records on the global meter provider
//! as it is at the first measurement: an application may build its engine first and
//! install its provider afterwards. (Its own binary: the global provider is process-wide.)

use chaos_core::Chaos;
use chaos_core::rules::{ErrorKind, Fault, Rule};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

#[tokio::test]
async fn the_global_provider_installed_after_the_engine_is_used() {
    let chaos = Chaos::new();
    chaos
        .add_rule(Rule::new(
            "queue-down",
            "queue",
            Fault::Error(ErrorKind::Unavailable),
        ))
        .unwrap();

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());

    for _ in 0..3 {
        assert!(chaos.inject("queue", "orders", async {}).await.is_err());
    }
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let last = exported.last().expect("exported");
    let scope = last
        .scope_metrics()
        .find(|s| s.scope().name() == "chaos-core")
        .expect("the engine's instrumentation scope");
    assert_eq!(scope.scope().version(), Some(env!("CARGO_PKG_VERSION")));
    let m = scope
        .metrics()
        .find(|m| m.name() == chaos_core::otel::INJECTIONS)
        .expect("chaos.injections");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() else {
        panic!("a u64 counter: {:?}", m.data());
    };
    let points: Vec<u64> = sum.data_points().map(|p| p.value()).collect();
    assert_eq!(points, [3]);
}
