//! The reqwest middleware against a do-nothing middleware in the same place, in one
//! criterion run, printed as ratios to it.
//!
//! The chain is `[M, Answer]`, where `Answer` responds at once: no socket, so what is
//! measured is the middleware's own cost per call (plus the chain's boxing, the same for
//! both). Requests are built outside the timing.
//!
//! Run with `cargo bench -p chaos-benches --bench reqwest`.

#![allow(missing_docs)]

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_reqwest::ChaosMiddleware;
use criterion::{BatchSize, Criterion, criterion_group};
use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        _req: Request,
        _ext: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        Ok(Response::from(http::Response::new("")))
    }
}

struct Pass;

#[async_trait::async_trait]
impl Middleware for Pass {
    async fn handle(
        &self,
        req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        next.run(req, ext).await
    }
}

fn chain(first: impl Middleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(first)
        .with(Answer)
        .build()
}

fn request() -> Request {
    let url = Url::parse("http://payments.internal:8080/v1/charge?id=42").unwrap();
    let mut req = Request::new(Method::POST, url);
    for (k, v) in [
        ("accept", "application/json"),
        ("user-agent", "svc/1.0"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("x-tenant", "tenant-unmatched"),
        ("x-request-id", "7b0c1d"),
    ] {
        req.headers_mut()
            .insert(k, http::HeaderValue::from_static(v));
    }
    req
}

fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

fn hundred_rules() -> String {
    let mut yaml = String::from("rules:\n");
    for i in 0..100 {
        let extra = match i % 3 {
            0 => format!("match: {{ path: /svc{i}/*, method: POST }}"),
            1 => format!("match: {{ scenario: gameday-{i} }}"),
            _ => format!("match: {{ headers: {{ x-tenant: tenant-{i} }} }}"),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: client\n    target: payments\n    fault: {{ abort: 503 }}\n    {extra}\n"
        ));
    }
    yaml
}

fn bench(c: &mut Criterion, name: &str, client: &ClientWithMiddleware) {
    c.bench_function(&format!("reqwest/{name}"), |b| {
        b.iter_batched(
            request,
            |req| {
                let fut = pin!(client.execute(req));
                match fut.poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready(r) => black_box(r.unwrap()),
                    Poll::Pending => panic!("the chain answers at once"),
                }
            },
            BatchSize::SmallInput,
        );
    });
}

fn benches(c: &mut Criterion) {
    bench(c, "baseline_pass", &chain(Pass));
    let empty = Chaos::new();
    bench(
        c,
        "no_rules",
        &chain(ChaosMiddleware::new(&empty, "payments")),
    );
    // Calls named by their host: each call notes its host among the engine's known
    // targets (one load and a scan, armed or not).
    bench(
        c,
        "no_rules_by_host",
        &chain(ChaosMiddleware::builder(&empty).build()),
    );
    let rules = engine(&hundred_rules());
    bench(
        c,
        "rules_100_no_match",
        &chain(ChaosMiddleware::new(&rules, "payments")),
    );
    let delay0 = engine("rules: [{ id: d, point: client, fault: { delay: 0ms } }]");
    bench(
        c,
        "match_delay_0",
        &chain(ChaosMiddleware::new(&delay0, "payments")),
    );
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
        "reqwest",
        &[
            "baseline_pass",
            "no_rules",
            "no_rules_by_host",
            "rules_100_no_match",
            "match_delay_0",
        ],
    );
}
