//! End to end on loopback: an axum hello-world served on one core, loaded from the other
//! by a Rust load generator over keep-alive HTTP/1.1 connections, without the layer (A)
//! and with it and a hundred rules none of which match (B), half the requests tagged
//! `x-chaos: scenario=…`. Runs A and B in interleaved rounds (A B, B A, …) and prints
//! each round's requests per second and p99 latency, and the medians of the B/A ratios.
//!
//! `benches/e2e` runs it; `cargo run --release -p chaos-benches --example e2e -- --help`.

#![allow(missing_docs)]

#[path = "../benches/common/cases.rs"]
#[allow(unused_imports)]
mod cases;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use chaos_tower::ChaosLayer;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tower_layer::Layer;

struct Args {
    rounds: usize,
    secs: f64,
    conns: usize,
    rules: usize,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        secs: 3.0,
        conns: 64,
        rules: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--rounds" => a.rounds = value().parse().unwrap_or_else(|_| usage("--rounds")),
            "--secs" => a.secs = value().parse().unwrap_or_else(|_| usage("--secs")),
            "--conns" => a.conns = value().parse().unwrap_or_else(|_| usage("--conns")),
            "--rules" => a.rules = value().parse().unwrap_or_else(|_| usage("--rules")),
            _ => usage(&flag),
        }
    }
    if a.rounds == 0 || a.conns == 0 || a.secs <= 0.0 {
        usage("a value");
    }
    a
}

fn usage(what: &str) -> ! {
    eprintln!(
        "e2e: bad {what}\nusage: e2e [--rounds N (5)] [--secs S per run (3)] [--conns C (64)] [--rules R (100)]"
    );
    std::process::exit(2)
}

/// Serves `app` on a fresh loopback port from a thread of its own (one core), as
/// `axum::serve` serves a service wrapped from outside.
fn serve<S>(app: S) -> SocketAddr
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
            axum::serve(listener, make).await.expect("serve");
        });
    });
    rx.recv().expect("server started")
}

/// What one run measured.
struct Run {
    rps: f64,
    p99: Duration,
}

/// Loads `addr` over `conns` connections for `secs` (after a warm-up), every other
/// request tagged.
fn load(rt: &tokio::runtime::Runtime, addr: SocketAddr, conns: usize, secs: f64) -> Run {
    rt.block_on(async move {
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..conns {
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                let mut lat = Vec::with_capacity(1 << 16);
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let mut req = Request::get("/hello")
                        .header("host", "orders.internal")
                        .body(Empty::<bytes::Bytes>::new())
                        .expect("request");
                    if i % 2 == 0 {
                        req.headers_mut()
                            .insert("x-chaos", HeaderValue::from_static("scenario=load-test"));
                    }
                    i += 1;
                    let t = Instant::now();
                    send.ready().await.expect("ready");
                    let res = send.send_request(req).await.expect("response");
                    assert_eq!(res.status(), 200);
                    res.into_body().collect().await.expect("body");
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed());
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        measuring.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        measuring.store(false, Ordering::Relaxed);
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("load task"));
        }
        all.sort_unstable();
        let p99 = all
            .get((all.len() * 99 / 100).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        Run {
            rps: all.len() as f64 / took.as_secs_f64(),
            p99,
        }
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let a = args();
    let app = || Router::new().route("/hello", get(|| async { "hello" }));
    let bare = serve(app());
    let chaos = cases::engine(cases::rules_none_matching(a.rules));
    let layered = ChaosLayer::builder(&chaos)
        .target("orders")
        .build()
        .layer(app());
    let with_layer = serve(layered);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{} rounds of {}s per side, {} connections, {} rules none matching, half the requests tagged",
        a.rounds, a.secs, a.conns, a.rules
    );
    println!(
        "{:>5} {:>12} {:>12} {:>7} {:>10} {:>10} {:>7}",
        "round", "rps A", "rps B", "B/A", "p99 A", "p99 B", "B/A"
    );
    let (mut rps, mut p99) = (Vec::new(), Vec::new());
    for r in 0..a.rounds {
        // A B, then B A: neither side always runs first.
        let (x, y) = if r % 2 == 0 {
            let x = load(&rt, bare, a.conns, a.secs);
            (x, load(&rt, with_layer, a.conns, a.secs))
        } else {
            let y = load(&rt, with_layer, a.conns, a.secs);
            (load(&rt, bare, a.conns, a.secs), y)
        };
        let (rr, pr) = (y.rps / x.rps, y.p99.as_secs_f64() / x.p99.as_secs_f64());
        println!(
            "{r:>5} {:>12.0} {:>12.0} {rr:>7.3} {:>8.0}µs {:>8.0}µs {pr:>7.3}",
            x.rps,
            y.rps,
            x.p99.as_secs_f64() * 1e6,
            y.p99.as_secs_f64() * 1e6,
        );
        rps.push(rr);
        p99.push(pr);
    }
    println!(
        "median B/A: requests/s {:.3}, p99 {:.3}",
        median(rps),
        median(p99)
    );
    let snap = chaos.snapshot();
    assert!(
        snap.rules.iter().all(|r| r.counters.injected == 0),
        "no rule may match the load"
    );
}
