//! A call that nothing is injected into costs the middleware no heap allocation: counted
//! with a global allocator against the same chain with a do-nothing middleware in its
//! place (every reqwest-middleware boxes its call's future; that is the chain's cost, not
//! ours). The innermost middleware answers at once, so no socket is involved. A plain
//! program, not a libtest harness, so nothing else in the process allocates meanwhile.

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext};
use chaos_reqwest::ChaosMiddleware;
use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Answers every call itself.
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

/// Passes every call on.
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
        ("x-tenant", "tenant-unmatched"),
        ("x-request-id", "7b0c1d"),
    ] {
        req.headers_mut()
            .insert(k, http::HeaderValue::from_static(v));
    }
    req
}

/// Allocations made by 2 000 calls (requests built beforehand), inside `ctx`'s scope
/// when given.
fn allocations(client: &ClientWithMiddleware, ctx: Option<&ChaosContext>) -> usize {
    let call = |req| {
        let fut = pin!(client.execute(req));
        match fut.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => drop(r.unwrap()),
            Poll::Pending => panic!("the chain answers at once"),
        }
    };
    let run = |reqs: Vec<Request>| match ctx {
        Some(c) => c.clone().sync_scope(|| reqs.into_iter().for_each(call)),
        None => reqs.into_iter().for_each(call),
    };
    run((0..100).map(|_| request()).collect());
    let reqs: Vec<_> = (0..2_000).map(|_| request()).collect();
    let reg = Region::new(GLOBAL);
    run(reqs);
    reg.change().allocations
}

fn hundred_rules() -> RuleSet {
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
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

fn pass_through_adds_no_allocation() {
    let baseline = allocations(&chain(Pass), None);
    assert!(baseline > 0);

    let empty = Chaos::new();
    let c = chain(ChaosMiddleware::new(&empty, "payments"));
    assert_eq!(allocations(&c, None), baseline, "no rules");

    let chaos = Chaos::new();
    chaos.replace(hundred_rules()).unwrap();
    let c = chain(ChaosMiddleware::new(&chaos, "payments"));
    assert_eq!(allocations(&c, None), baseline, "100 rules");
    let unnamed = chain(ChaosMiddleware::builder(&chaos).build());
    assert_eq!(
        allocations(&unnamed, None),
        baseline,
        "100 rules, target = host"
    );
    assert!(
        chaos
            .snapshot()
            .rules
            .iter()
            .all(|r| r.counters.injected == 0)
    );

    // The counter works: a middleware that injects is counted.
    let abort = Chaos::new();
    abort
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules: [{ id: a, point: client, fault: { abort: 503 } }]",
            )
            .unwrap(),
        )
        .unwrap();
    let c = chain(ChaosMiddleware::new(&abort, "payments"));
    assert!(allocations(&c, None) > baseline);
    // So does forwarding a context: the outbound headers are new values.
    let ctx = ChaosContext::builder().scenario("gameday-7").build();
    assert!(allocations(&chain(ChaosMiddleware::new(&empty, "payments")), Some(&ctx)) > baseline);
}

/// Run as a plain program (`harness = false` in the manifest): nothing but this thread is
/// in the process to allocate while it counts.
fn main() {
    pass_through_adds_no_allocation();
    println!("zero_alloc: pass through adds no allocation: ok");
}
