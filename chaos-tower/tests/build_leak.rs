//! Building layers in a loop and dropping them leaves nothing behind: a test suite that
//! builds a layer (or an engine and a layer) per test does not grow.

use std::alloc::System;
use std::convert::Infallible;

use chaos_core::Chaos;
use chaos_tower::{ChaosClientLayer, ChaosLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::service_fn;
use tower_layer::Layer;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn inner() -> impl Clone {
    service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(axum::body::Body::empty()))
    })
}

/// The counters are global: the tests of this file measure one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bytes still held after `f` ran, net of what it freed.
fn growth(f: impl FnOnce()) -> i64 {
    let region = Region::new(GLOBAL);
    f();
    let s = region.change();
    // A reallocation counts its growth as allocated and its shrinking as freed.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

#[test]
fn ten_thousand_layers_over_one_engine() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let chaos = Chaos::new();
    // The engine's steady state for these points is made once, on first use.
    drop(ChaosLayer::builder(&chaos).target("checkout").build());
    drop(ChaosClientLayer::new(&chaos, "payments"));
    let grew = growth(|| {
        for _ in 0..10_000 {
            let server = ChaosLayer::builder(&chaos).target("checkout").build();
            let client = ChaosClientLayer::new(&chaos, "payments");
            let svc = server.layer(inner());
            let call = client.layer(inner());
            drop((svc.clone(), call.clone(), svc, call, server, client));
        }
    });
    eprintln!("10 000 builds kept {grew} bytes");
    assert!(grew < 1 << 20, "10 000 builds kept {grew} bytes");
}

const ENGINES: usize = 2_000;

#[test]
fn an_engine_and_its_layers_per_test() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let grew = growth(|| {
        for i in 0..ENGINES {
            let chaos = Chaos::new();
            let server = ChaosLayer::builder(&chaos)
                .target(format!("svc-{i}"))
                .build();
            let client = ChaosClientLayer::new(&chaos, "payments");
            drop((server.layer(inner()), client.layer(inner())));
        }
    });
    eprintln!("2 000 engines kept {grew} bytes");
    assert!(grew < 1 << 20, "2 000 engines kept {grew} bytes");
}

#[test]
fn a_static_layer_is_kept_and_says_so() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // `build_static` is the one that stays: for a layer built once at start-up.
    let chaos = Chaos::new();
    drop(ChaosLayer::builder(&chaos).build_static());
    let grew = growth(|| drop(ChaosLayer::builder(&chaos).build_static()));
    assert!(grew > 0, "a static layer's settings are never freed");
}
