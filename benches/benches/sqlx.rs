//! A query through `ChaosPool` against the same query on the bare pool, on SQLite in
//! memory, in one criterion run, printed as ratios to the bare pool.
//!
//! Run with `cargo bench -p chaos-benches --bench sqlx`.

#![allow(missing_docs)]

mod common;

use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_sqlx::ChaosPool;
use criterion::{Criterion, criterion_group};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Sqlite, SqlitePool};

const QUERY: &str = "SELECT id, status, total FROM orders WHERE id = $1";

fn hundred_rules() -> Chaos {
    let mut yaml = String::from("rules:\n");
    for i in 0..100 {
        let m = match i % 2 {
            0 => format!("match: {{ sql: \"UPDATE audit_{i}*\" }}"),
            _ => format!("match: {{ sql: \"SELECT * FROM t{i}*\", scenario: gameday-{i} }}"),
        };
        yaml.push_str(&format!(
            "  - id: r{i}\n    point: sql\n    target: orders-db\n    fault: {{ error: unavailable }}\n    {m}\n"
        ));
    }
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, &yaml).unwrap())
        .unwrap();
    chaos
}

async fn setup() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, total INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO orders VALUES (1, 'open', 100), (2, 'paid', 250)")
        .execute(&pool)
        .await
        .unwrap();
    // Warm SQLite's statement cache and the worker thread before anything is measured:
    // without it the first variant measured pays for the warm-up (seen: 180 µs, then 142).
    for _ in 0..5_000 {
        let _: Row = sqlx::query_as(QUERY)
            .bind(1_i64)
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    pool
}

type Row = (i64, String, i64);

fn bench_bare(c: &mut Criterion, rt: &tokio::runtime::Runtime, pool: &SqlitePool) {
    c.bench_function("sqlx/baseline_bare_pool", |b| {
        b.to_async(rt).iter(|| async {
            let row: Row = sqlx::query_as(QUERY)
                .bind(1_i64)
                .fetch_one(pool)
                .await
                .unwrap();
            row
        });
    });
}

fn bench_chaos(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    pool: &ChaosPool<Sqlite>,
) {
    c.bench_function(&format!("sqlx/{name}"), |b| {
        b.to_async(rt).iter(|| async {
            let row: Row = sqlx::query_as(QUERY)
                .bind(1_i64)
                .fetch_one(pool)
                .await
                .unwrap();
            row
        });
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(setup());
    bench_bare(c, &rt, &pool);
    let empty = ChaosPool::new(pool.clone(), &Chaos::new(), "orders-db");
    bench_chaos(c, &rt, "no_rules", &empty);
    let armed = ChaosPool::new(pool.clone(), &hundred_rules(), "orders-db");
    bench_chaos(c, &rt, "rules_100_no_match", &armed);
    // The bare pool again, last, to show the drift of the run.
    c.bench_function("sqlx/baseline_bare_pool_again", |b| {
        b.to_async(&rt).iter(|| async {
            let row: Row = sqlx::query_as(QUERY)
                .bind(1_i64)
                .fetch_one(&pool)
                .await
                .unwrap();
            row
        });
    });
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    common::print_ratios(
        "sqlx",
        &[
            "baseline_bare_pool",
            "no_rules",
            "rules_100_no_match",
            "baseline_bare_pool_again",
        ],
    );
}
