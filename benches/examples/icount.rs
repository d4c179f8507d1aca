//! Runs one case of the layer bench N times, for counting instructions under valgrind
//! (`benches/icount`): deterministic figures where this machine's timings are noisy.
//!
//! `cargo run --release -p chaos-benches --example icount -- CASE N`, or `list`.

#![allow(missing_docs)]

#[path = "../benches/common/cases.rs"]
mod cases;

use std::hint::black_box;

use axum::body::Body;
use http::{Request, Response};
use tower::{Service, ServiceExt};

/// Runs the named case `n` times, as the bench drives it: clone, `oneshot`, await.
struct Run {
    name: String,
    n: u64,
    rt: tokio::runtime::Runtime,
    found: bool,
    list: bool,
}

impl cases::Visit for Run {
    fn case<S>(&mut self, name: &str, svc: S, tag: cases::Tag)
    where
        S: Service<Request<()>, Response = Response<Body>, Error = cases::Err> + Clone,
    {
        if self.list {
            println!("{name}");
            return;
        }
        if name != self.name {
            return;
        }
        self.found = true;
        let req = cases::realistic(tag);
        self.rt.block_on(async {
            for _ in 0..self.n {
                let svc = svc.clone();
                black_box(svc.oneshot(req.clone()).await.unwrap());
            }
        });
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "list".into());
    let n = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut run = Run {
        list: name == "list",
        name,
        n,
        rt,
        found: false,
    };
    cases::all(&mut run);
    if !run.list && !run.found {
        eprintln!("no case {:?}; `list` names them", run.name);
        std::process::exit(2);
    }
}
