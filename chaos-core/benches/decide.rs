//! Cost of a decision, against a bare function call measured in the same run.
//!
//! ```text
//! cargo bench -p chaos-core --bench decide
//! ```
//!
//! After criterion's own report, prints a table of medians and ratios to the baseline.

use std::hint::black_box;
use std::time::Duration;

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, ChaosContext, Point, RequestView};
use criterion::{Criterion, criterion_group};
use http::{HeaderMap, HeaderValue, Method};

/// The baseline: a call through a function the optimiser cannot see into, on the same view.
#[inline(never)]
fn bare(view: &RequestView<'_>) -> bool {
    black_box(view.target()).len() == 42
}

/// `n` rules that do not match the benched request, spread as a real file would be: over
/// points, targets, scenarios and paths.
fn spread_rules(n: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        let body = match i % 5 {
            0 => format!("point: client\n    target: dep{i}"),
            1 => format!("point: server\n    match: {{ scenario: gameday-{i} }}"),
            2 => format!("point: sql\n    target: db{i}"),
            3 => format!("point: server\n    target: svc{i}"),
            _ => format!("point: queue{i}"),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    {body}\n    fault: {{ abort: 503 }}\n"
        ));
    }
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

/// `n` rules all at the benched point and target, told apart only by path: the worst case,
/// a linear scan of cheap checks.
fn same_group_rules(n: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: server\n    match: {{ path: /svc{i}/*, method: POST }}\n    fault: {{ abort: 503 }}\n"
        ));
    }
    RuleSet::parse(Format::Yaml, &yaml).unwrap()
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "orders.internal"),
        ("user-agent", "svc/1.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("authorization", "Bearer abc.def.ghi"),
        ("x-request-id", "7b0c1d"),
        ("x-chaos", "scenario=checkout-test"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn benches(c: &mut Criterion) {
    let h = headers();
    let method = Method::GET;
    let engine = |set: RuleSet| Chaos::builder().rules(set).build().unwrap();
    let ctx = ChaosContext::builder().scenario("checkout-test").build();
    let view = RequestView::new(Point::Server, "orders")
        .method(&method)
        .path("/api/v1/orders/123")
        .headers(&h)
        .context(Some(&ctx));

    let mut g = c.benchmark_group("decide");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("baseline_bare_call", |b| b.iter(|| bare(black_box(&view))));
    let none = Chaos::new();
    g.bench_function("no_rules", |b| {
        b.iter(|| black_box(none.decide(black_box(&view))).is_inject())
    });
    for n in [10, 100, 1000] {
        let e = engine(spread_rules(n));
        g.bench_function(format!("spread_{n}_no_match"), |b| {
            b.iter(|| black_box(e.decide(black_box(&view))).is_inject())
        });
    }
    for n in [10, 100] {
        let e = engine(same_group_rules(n));
        g.bench_function(format!("same_group_{n}_no_match"), |b| {
            b.iter(|| black_box(e.decide(black_box(&view))).is_inject())
        });
    }
    let hit = engine(
        RuleSet::parse(
            Format::Yaml,
            "rules:\n  - { id: hit, point: server, fault: { delay: 0s } }\n",
        )
        .unwrap(),
    );
    g.bench_function("match_delay_0", |b| {
        b.iter(|| black_box(hit.decide(black_box(&view))).is_inject())
    });
    g.bench_function("context_from_headers", |b| {
        b.iter(|| black_box(none.context_from_headers(black_box(&h))).is_some())
    });
    g.finish();
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}

/// Reads criterion's estimates back and prints each median as a ratio to the baseline.
fn print_ratios() {
    let dirs = [
        std::env::var("CARGO_TARGET_DIR")
            .map(|d| format!("{d}/criterion"))
            .unwrap_or_default(),
        "target/criterion".to_owned(),
        "../target/criterion".to_owned(),
    ];
    let Some(root) = dirs
        .iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join("decide").is_dir())
    else {
        return; // `cargo test --benches` runs each bench once and writes no estimates
    };
    let median = |name: &str| -> Option<f64> {
        let text =
            std::fs::read_to_string(root.join("decide").join(name).join("new/estimates.json"))
                .ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
    let Some(base) = median("baseline_bare_call") else {
        return;
    };
    println!("\n{:<28} {:>10} {:>8}", "decide/…", "median", "× bare");
    for name in [
        "baseline_bare_call",
        "no_rules",
        "spread_10_no_match",
        "spread_100_no_match",
        "spread_1000_no_match",
        "same_group_10_no_match",
        "same_group_100_no_match",
        "match_delay_0",
        "context_from_headers",
    ] {
        if let Some(m) = median(name) {
            println!("{name:<28} {:>8.2}ns {:>8.2}", m, m / base);
        }
    }
}
