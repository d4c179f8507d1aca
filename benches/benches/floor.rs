//! What the server layer's parts cost on their own, against the bare call of the layer
//! bench: where the time of an armed or tagged request goes, and so how low each path
//! can go while it does what it promises.
//!
//! Each part runs alone, as the layer runs it for one request:
//!
//! - `context_untagged`: `Chaos::context_from_headers` on the realistic request (13 headers,
//!   neither chaos header): the check every request makes.
//! - `context_tagged`: the same with `x-chaos: scenario=…`: a context cache hit.
//! - `context_scope`: running a ready future in the context's task-local scope, as the
//!   server layer does (entered in `call` and in each poll; one reference count cloned).
//! - `clock_pair`: two readings of the clock and their difference, which a timed request
//!   needs (its latency).
//! - `observation`: a whole timed steady-state observation (both readings, the second's
//!   slot, the latency histogram, the service guard's check), nothing matched.
//! - `observation_sampled`: the same as the server layer makes it for an organic request
//!   (`observe_sampled`, one in 1,000 timed): the count in its shard, no clock reading,
//!   and the check.
//! - `decide_100_rules`, `decide_100_rules_tagged`: the decision on 100 rules none
//!   matching (target, segment, method and `x-tenant` look-ups), untagged and with the
//!   tagged request's context (its scenario looked up too).
//! - `header_get`: one `HeaderMap::get` of a custom name, made once (what the index does
//!   for the rules on a header).
//!
//! Run as the layer bench: interleaved rounds (`ROUNDS`, default 5), each part right after
//! the bare call, medians printed as a fraction of it:
//! `cargo bench -p chaos-benches --bench floor`.

#![allow(missing_docs)]

#[path = "common/cases.rs"]
mod cases;
mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Waker};

use chaos_core::{Chaos, ChaosContext, Point, RequestView};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderName, Request};
use tower::ServiceExt;

/// The layer bench's baseline: the bare service cloned, `oneshot` and awaited.
fn bare(c: &mut Criterion, rt: &tokio::runtime::Runtime, id: &str) {
    let svc = cases::bare();
    let req = cases::realistic(cases::Tag::None);
    c.bench_function(id, |b| {
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

struct Parts {
    armed: Chaos,
    steady: std::sync::Arc<chaos_core::steady::SteadyState>,
    untagged: Request<()>,
    tagged: Request<()>,
    ctx: ChaosContext,
}

impl Parts {
    fn new() -> Parts {
        let armed = cases::engine(cases::hundred_rules());
        let tagged = cases::realistic(cases::Tag::XChaos);
        let ctx = armed
            .context_from_headers(tagged.headers())
            .expect("the tagged request has a context");
        Parts {
            steady: armed.steady_state("server", "orders"),
            armed,
            untagged: cases::realistic(cases::Tag::None),
            tagged,
            ctx,
        }
    }

    /// The view the server layer decides on for `req`.
    fn view(req: &Request<()>) -> RequestView<'_> {
        RequestView::new(Point::Server, "orders")
            .method(req.method())
            .uri(req.uri())
            .headers(req.headers())
    }

    /// Runs the part named `name` under criterion as `id`.
    fn bench(&self, c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, id: &str) {
        let _rt = rt.enter();
        let _: &mut Criterion = match name {
            "context_untagged" => c.bench_function(id, |b| {
                b.iter(|| black_box(self.armed.context_from_headers(self.untagged.headers())))
            }),
            "context_tagged" => c.bench_function(id, |b| {
                b.iter(|| black_box(self.armed.context_from_headers(self.tagged.headers())))
            }),
            "context_scope" => {
                let mut cx = Context::from_waker(Waker::noop());
                // The context comes owned, as `context_from_headers` gives it.
                c.bench_function(id, |b| {
                    b.iter_batched(
                        || self.ctx.clone(),
                        |ctx| {
                            let fut = ctx.clone().sync_scope(|| std::future::ready(black_box(1)));
                            let fut = pin!(ctx.scope(fut));
                            black_box(fut.poll(&mut cx))
                        },
                        BatchSize::SmallInput,
                    )
                })
            }
            "clock_pair" => c.bench_function(id, |b| {
                b.iter(|| {
                    let start = black_box(tokio::time::Instant::now());
                    black_box(tokio::time::Instant::now().saturating_duration_since(start))
                })
            }),
            "observation" => c.bench_function(id, |b| {
                b.iter(|| {
                    let obs = self.armed.observe().expect("armed");
                    obs.finish(&self.armed, &self.steady, false, false)
                })
            }),
            "observation_sampled" => c.bench_function(id, |b| {
                b.iter(|| {
                    // An organic request outside the sample (one in 1,000 is timed).
                    let obs = self.armed.observe_sampled(&self.steady).expect("armed");
                    obs.finish(&self.armed, &self.steady, false, false)
                })
            }),
            "decide_100_rules" => c.bench_function(id, |b| {
                b.iter(|| black_box(self.armed.decide(&Self::view(&self.untagged))))
            }),
            "decide_100_rules_tagged" => c.bench_function(id, |b| {
                b.iter(|| {
                    black_box(
                        self.armed
                            .decide(&Self::view(&self.tagged).context(Some(&self.ctx))),
                    )
                })
            }),
            "header_get" => {
                let name = HeaderName::from_static("x-tenant");
                c.bench_function(id, |b| {
                    b.iter(|| black_box(self.untagged.headers().get(&name)))
                })
            }
            other => unreachable!("no part {other}"),
        };
    }
}

const PARTS: [&str; 9] = [
    "context_untagged",
    "context_tagged",
    "context_scope",
    "clock_pair",
    "observation",
    "observation_sampled",
    "decide_100_rules",
    "decide_100_rules_tagged",
    "header_get",
];

fn benches(c: &mut Criterion) {
    let rt = common::current_thread();
    let parts = Parts::new();
    for round in 0..common::rounds() {
        for name in PARTS {
            bare(c, &rt, &format!("floor/r{round}/{name}-bare"));
            parts.bench(c, &rt, name, &format!("floor/r{round}/{name}"));
        }
    }
    let names: Vec<String> = PARTS.iter().map(|&n| n.to_owned()).collect();
    common::print_round_ratios("floor", common::rounds(), &names);
}

criterion_group! {
    name = group;
    config = common::rounds_config();
    targets = benches
}

criterion_main!(group);
