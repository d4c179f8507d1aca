//! The server layer against a bare service, a peer chaos layer and a tower-http layer, in
//! one criterion run, printed as ratios to the bare service.
//!
//! Every variant gets the same realistic request (13 headers), moved in by value, and is
//! driven the way `axum::serve` drives a service: clone the service, `oneshot` it, await
//! the response on a current-thread tokio runtime. The layer is measured both ways a
//! service can hold its settings: `build()` (a reference count, one atomic increment per
//! clone) and `build_static()` (a pointer copy).
//!
//! Run with `cargo bench -p chaos-benches`.

#![allow(missing_docs)]

#[path = "common/cases.rs"]
mod cases;
mod common;

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group};
use http::{Request, Response};
use tower::{Service, ServiceExt};

fn bench<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, svc: S, x_chaos: bool)
where
    S: Service<Request<()>, Response = Response<Body>, Error = cases::Err> + Clone,
{
    let req = cases::realistic(x_chaos);
    c.bench_function(&format!("layer/{name}"), |b| {
        b.to_async(rt).iter_batched(
            || req.clone(),
            |req| {
                let svc = svc.clone();
                async move { black_box(svc.oneshot(req).await.unwrap()) }
            },
            BatchSize::SmallInput,
        )
    });
}

/// Measures each case with criterion.
struct Bench<'a> {
    c: &'a mut Criterion,
    rt: tokio::runtime::Runtime,
}

impl cases::Visit for Bench<'_> {
    fn case<S>(&mut self, name: &str, svc: S, x_chaos: bool)
    where
        S: Service<Request<()>, Response = Response<Body>, Error = cases::Err> + Clone,
    {
        bench(self.c, &self.rt, name, svc, x_chaos);
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    cases::all(&mut Bench { c, rt });
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    common::print_ratios(
        "layer",
        &[
            "baseline_bare",
            "no_rules",
            "no_rules_static",
            "rules_100_no_match",
            "rules_100_no_match_static",
            "rules_100_no_match_x_chaos",
            "no_rules_x_chaos",
            "rules_1000_no_match",
            "rules_1000_no_match_x_chaos",
            "match_delay_0",
            "match_delay_0_static",
            "match_rate_0_control",
            "tower_resilience_chaos_rate_0",
            "tower_map_request_identity",
            "tower_http_propagate_header",
            "tower_http_set_request_header",
        ],
    );
}
