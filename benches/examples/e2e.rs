//! End to end on loopback: an axum hello-world served on one core, loaded from the other
//! by a Rust load generator over keep-alive HTTP/1.1 connections, without the layer (A)
//! and with it and a hundred rules none of which match (B), half the requests tagged
//! `x-chaos: scenario=…`. Both sides keep their connections open and take turns in
//! windows of 100 ms (A B B A …), so a slow spell of this shared machine lands on both
//! alike; a round is `--secs` of each. Prints each round's requests per second and p99
//! latency, and the medians of the B/A ratios.
//! `--calibrate` serves the bare service on both sides: the spread of its ratios is the
//! harness's own noise on this machine.
//!
//! `benches/e2e` runs it; `cargo run --release -p chaos-benches --example e2e -- --help`.

#![allow(missing_docs)]

#[path = "../benches/common/cases.rs"]
#[allow(unused_imports)]
mod cases;
// For `median`; the rest reads criterion's output, which this program does not write.
#[path = "../benches/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
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
    tag_every: usize,
    calibrate: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 11,
        secs: 1.5,
        conns: 64,
        rules: 100,
        tag_every: 2,
        calibrate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--rounds" => a.rounds = value().parse().unwrap_or_else(|_| usage("--rounds")),
            "--secs" => a.secs = value().parse().unwrap_or_else(|_| usage("--secs")),
            "--conns" => a.conns = value().parse().unwrap_or_else(|_| usage("--conns")),
            "--rules" => a.rules = value().parse().unwrap_or_else(|_| usage("--rules")),
            "--calibrate" => a.calibrate = true,
            "--tag-every" => {
                a.tag_every = value().parse().unwrap_or_else(|_| usage("--tag-every"));
            }
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
        "e2e: bad {what}\nusage: e2e [--rounds N (11)] [--secs S per run (1.5)] [--conns C (64)] [--rules R (100)] [--tag-every N (2; 0: none)] [--calibrate (the bare service on both sides)]"
    );
    std::process::exit(2)
}

/// What `axum::serve` can serve, wrapped from outside.
trait App:
    tower::Service<axum::extract::Request, Response = axum::response::Response, Error = Infallible>
    + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `a` and `b` on two fresh loopback ports from one thread (one core, the same
/// for both), each as `axum::serve` serves a service wrapped from outside.
fn serve<A: App, B: App>(a: A, b: B) -> (SocketAddr, SocketAddr)
where
    A::Future: Send,
    B::Future: Send,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let la = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let lb = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send((
                la.local_addr().expect("addr"),
                lb.local_addr().expect("addr"),
            ))
            .expect("send");
            let a = axum::ServiceExt::<axum::extract::Request>::into_make_service(a);
            let b = axum::ServiceExt::<axum::extract::Request>::into_make_service(b);
            let (ra, rb) = tokio::join!(axum::serve(la, a), axum::serve(lb, b));
            ra.expect("serve");
            rb.expect("serve");
        });
    });
    rx.recv().expect("servers started")
}

/// What one side measured in a round.
struct Run {
    rps: f64,
    p99: Duration,
}

/// Which side's connections send: `A`, `B`, or none.
const A: u8 = 0;
const B: u8 = 1;
const IDLE: u8 = 2;

/// Connection `c` of one side: it sends while its side is active and keeps the latency
/// of each request that both started and finished in one active window.
fn connection(
    addr: SocketAddr,
    side: u8,
    c: usize,
    tag_every: usize,
    active: &Arc<AtomicU8>,
    wake: &Arc<tokio::sync::Notify>,
    stop: &Arc<AtomicBool>,
) -> impl Future<Output = Vec<(u32, Duration)>> + use<> {
    let (active, wake, stop) = (active.clone(), wake.clone(), stop.clone());
    async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        // (window, latency) of each request measured.
        let mut lat = Vec::with_capacity(1 << 16);
        let mut i = c;
        loop {
            let waiting = wake.notified();
            if stop.load(Ordering::Relaxed) {
                return lat;
            }
            let window = u32::from(active.load(Ordering::Acquire) == side);
            if window == 0 {
                waiting.await;
                continue;
            }
            let mut req = Request::get("/hello")
                .header("host", "orders.internal")
                .body(Empty::<bytes::Bytes>::new())
                .expect("request");
            if tag_every > 0 && i.is_multiple_of(tag_every) {
                req.headers_mut()
                    .insert("x-chaos", HeaderValue::from_static("scenario=load-test"));
            }
            i += 1;
            let seq = WINDOW.load(Ordering::Acquire);
            let t = Instant::now();
            send.ready().await.expect("ready");
            let res = send.send_request(req).await.expect("response");
            assert_eq!(res.status(), 200);
            res.into_body().collect().await.expect("body");
            let took = t.elapsed();
            if WINDOW.load(Ordering::Acquire) == seq && active.load(Ordering::Acquire) == side {
                lat.push((seq, took));
            }
        }
    }
}

/// The window now running: requests that span a switch are not counted.
static WINDOW: AtomicU32 = AtomicU32::new(0);

/// Runs `a.rounds` rounds; in each, the sides take turns (A B B A …) in windows of
/// `WINDOW_MS`, for `a.secs` each in all. Returns each round's figures for A and B.
fn run(
    rt: &tokio::runtime::Runtime,
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    a: &Args,
) -> Vec<(Run, Run)> {
    rt.block_on(async {
        let active = Arc::new(AtomicU8::new(IDLE));
        let wake = Arc::new(tokio::sync::Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        // Spawned in turns (A, B, A, …), so neither side's tasks always run first.
        let mut tasks = Vec::new();
        for c in 0..a.conns {
            for (addr, side) in [(addr_a, A), (addr_b, B)] {
                let conn = connection(addr, side, c, a.tag_every, &active, &wake, &stop);
                tasks.push(tokio::spawn(conn));
            }
        }
        let window = Duration::from_millis(WINDOW_MS);
        let per_round = ((a.secs * 1000.0 / WINDOW_MS as f64).ceil() as usize).max(1);
        let switch = |side: u8| {
            WINDOW.fetch_add(1, Ordering::AcqRel);
            active.store(side, Ordering::Release);
            wake.notify_waiters();
        };
        // Warm-up: both sides, a few windows each.
        for k in 0..6 {
            switch(if k % 2 == 0 { A } else { B });
            tokio::time::sleep(window).await;
        }
        // Each round: its windows, and how long each side was active.
        let mut rounds: Vec<(std::ops::Range<u32>, [Duration; 2])> = Vec::new();
        for _ in 0..a.rounds {
            let first = WINDOW.load(Ordering::Acquire) + 1;
            let mut spent = [Duration::ZERO; 2];
            for k in 0..2 * per_round {
                // A B B A A B B A …: neither side always goes first.
                let side = if (k + k / 2) % 2 == 0 { A } else { B };
                switch(side);
                let start = Instant::now();
                tokio::time::sleep(window).await;
                spent[usize::from(side)] += start.elapsed();
            }
            rounds.push((first..WINDOW.load(Ordering::Acquire) + 1, spent));
        }
        switch(IDLE);
        stop.store(true, Ordering::Relaxed);
        wake.notify_waiters();
        let mut per_side: [Vec<(u32, Duration)>; 2] = [Vec::new(), Vec::new()];
        for (n, t) in tasks.into_iter().enumerate() {
            per_side[n % 2].extend(t.await.expect("load task"));
        }
        rounds
            .into_iter()
            .map(|(windows, spent)| {
                let figures = |side: usize| {
                    let mut lat: Vec<Duration> = per_side[side]
                        .iter()
                        .filter(|(w, _)| windows.contains(w))
                        .map(|&(_, d)| d)
                        .collect();
                    lat.sort_unstable();
                    let p99 = lat
                        .get((lat.len() * 99 / 100).min(lat.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or_default();
                    Run {
                        rps: lat.len() as f64 / spent[side].as_secs_f64(),
                        p99,
                    }
                };
                (figures(0), figures(1))
            })
            .collect()
    })
}

/// How long one side sends before the other takes over.
const WINDOW_MS: u64 = 100;

fn main() {
    let a = args();
    let app = || Router::new().route("/hello", get(|| async { "hello" }));
    let chaos = if a.rules == 0 {
        chaos_core::Chaos::new()
    } else {
        cases::engine(cases::rules_none_matching(a.rules))
    };
    let layered = ChaosLayer::builder(&chaos)
        .target("orders")
        .build()
        .layer(app());
    // Calibration: the bare service on both sides shows the harness's own noise.
    let (bare, with_layer) = if a.calibrate {
        drop(layered);
        serve(app(), app())
    } else {
        serve(app(), layered)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tagged = match a.tag_every {
        0 => "no request tagged".to_owned(),
        1 => "every request tagged".to_owned(),
        n => format!("1 request in {n} tagged"),
    };
    println!(
        "{} rounds of {}s per side, {} connections, {} rules none matching, {tagged}{}",
        a.rounds,
        a.secs,
        a.conns,
        a.rules,
        if a.calibrate {
            " (calibration: no layer on either side)"
        } else {
            ""
        }
    );
    println!(
        "{:>5} {:>12} {:>12} {:>7} {:>10} {:>10} {:>7}",
        "round", "rps A", "rps B", "B/A", "p99 A", "p99 B", "B/A"
    );
    let (mut rps, mut p99) = (Vec::new(), Vec::new());
    for (r, (x, y)) in run(&rt, bare, with_layer, &a).into_iter().enumerate() {
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
        common::median(rps),
        common::median(p99)
    );
    let snap = chaos.snapshot();
    assert!(
        snap.rules.iter().all(|r| r.counters.injected == 0),
        "no rule may match the load"
    );
}
