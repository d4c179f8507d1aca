//! The server layer against a bare service, a peer chaos layer and a tower-http layer, in
//! one criterion run, printed as ratios to the bare service.
//!
//! Every variant gets the same realistic request (13 headers), moved in by value, and is
//! driven the way `axum::serve` drives a service: clone the service, `oneshot` it, await
//! the response on a current-thread tokio runtime. The layer is measured both ways a
//! service can hold its settings: `build()` (a reference count, one atomic increment per
//! clone) and `build_static()` (a pointer copy).
//!
//! The cases run in interleaved rounds (`ROUNDS`, default 5: every case once per round, in
//! turn), each case measured right after the bare service, so a slow spell of this shared
//! machine lands on both alike; each ratio printed is the median over the rounds of the
//! case's time over the bare service's measured just before it.
//!
//! Run with `cargo bench -p chaos-benches --bench layer` (`ROUNDS=9 …` for more rounds).

#![allow(missing_docs)]

#[path = "common/cases.rs"]
mod cases;
mod common;

use std::hint::black_box;

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Service, ServiceExt};

fn bench<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, svc: S, tag: cases::Tag)
where
    S: Service<Request<()>, Response = Response<Body>, Error = cases::Err> + Clone,
{
    let req = cases::realistic(tag);
    c.bench_function(name, |b| {
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

/// Measures each case with criterion, as `layer/rROUND/NAME`.
struct Bench<'a> {
    c: &'a mut Criterion,
    rt: tokio::runtime::Runtime,
    round: usize,
    names: Vec<String>,
}

impl cases::Visit for Bench<'_> {
    fn case<S>(&mut self, name: &str, svc: S, tag: cases::Tag)
    where
        S: Service<Request<()>, Response = Response<Body>, Error = cases::Err> + Clone,
    {
        // The bare service again, just before: the case's pair in this round.
        let pair = format!("layer/r{}/{name}-bare", self.round);
        bench(self.c, &self.rt, &pair, cases::bare(), tag);
        let id = format!("layer/r{}/{name}", self.round);
        bench(self.c, &self.rt, &id, svc, tag);
        if self.round == 0 {
            self.names.push(name.to_owned());
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut b = Bench {
        c,
        rt,
        round: 0,
        names: Vec::new(),
    };
    for round in 0..common::rounds() {
        b.round = round;
        cases::all(&mut b);
    }
    common::print_round_ratios("layer", common::rounds(), &b.names);
}

criterion_group! {
    name = group;
    config = common::rounds_config();
    targets = benches
}

criterion_main!(group);
