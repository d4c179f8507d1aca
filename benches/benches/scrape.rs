//! What a Prometheus scrape of `GET /chaos/metrics` costs the instance, with 100 rules
//! whose cohorts have seen traffic, against what the admin API's `GET /chaos/rules`
//! already costs (the snapshot as JSON), in interleaved rounds.
//!
//! Both are built from the engine's counters when asked; neither adds work to the
//! request path. Run with `cargo bench -p chaos-benches --bench scrape`.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use criterion::{Criterion, criterion_group};

const RULES: usize = 100;

/// An engine with `RULES` rules (half their matches injected, a delay of zero), each of
/// which has seen 20 requests.
fn engine() -> Chaos {
    let mut yaml = String::from("rules:\n");
    for i in 0..RULES {
        yaml.push_str(&format!(
            "  - {{ id: rule-{i}, point: work, target: t{i}, fault: {{ delay: 0ms }}, rate: 50%, guard: {{ error_rate_above: 50%, window: 10s }} }}\n"
        ));
    }
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, &yaml).expect("rules"))
        .expect("loaded");
    let rt = common::current_thread();
    rt.block_on(async {
        for i in 0..RULES {
            let target = format!("t{i}");
            for _ in 0..20 {
                let _ = chaos.inject("work", &target, async {}).await;
            }
        }
    });
    chaos
}

fn scrape(c: &mut Criterion) {
    let chaos = engine();
    let text = chaos_tower::admin::metrics_text(&chaos);
    let json = serde_json::to_vec(&chaos.snapshot()).expect("JSON");
    println!(
        "{RULES} rules: /chaos/metrics is {} bytes in {} lines; /chaos/rules is {} bytes",
        text.len(),
        text.lines().count(),
        json.len()
    );
    let rounds = common::rounds();
    for r in 0..rounds {
        c.bench_function(&format!("scrape/r{r}/metrics-bare"), |b| {
            b.iter(|| black_box(serde_json::to_vec(&chaos.snapshot()).expect("JSON")))
        });
        c.bench_function(&format!("scrape/r{r}/metrics"), |b| {
            b.iter(|| black_box(chaos_tower::admin::metrics_text(&chaos)))
        });
    }
    common::print_round_ratios("scrape", rounds, &["metrics".to_owned()]);
}

criterion_group! {
    name = group;
    config = common::rounds_config();
    targets = scrape
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
}
