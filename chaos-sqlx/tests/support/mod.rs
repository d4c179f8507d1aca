//! Real databases for the tests: SQLite in memory and on a temp file, and the PostgreSQL
//! that `scripts/test` (or `.ci/run`) started, found through `DATABASE_URL`.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

static NEXT: AtomicU32 = AtomicU32::new(1);

fn next() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The rows every test starts with.
pub const SEED: &str = "INSERT INTO orders (id, status, total) VALUES \
    (1, 'open', 100), (2, 'paid', 250), (3, 'open', 75)";

const SCHEMA: &str =
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, status TEXT NOT NULL, total BIGINT NOT NULL)";

/// Creates the table and its rows.
macro_rules! seed {
    ($pool:expr) => {
        $pool.execute(SCHEMA).await.unwrap();
        $pool.execute(SEED).await.unwrap();
    };
}

/// A fresh shared in-memory SQLite database, seeded.
pub async fn sqlite_memory() -> Option<(SqlitePool, Guard)> {
    let url = format!("sqlite:file:chaos_mem_{}?mode=memory&cache=shared", next());
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // A shared in-memory database lives while a connection is open.
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect(&url)
        .await
        .unwrap();
    seed!(pool);
    Some((pool, Guard::None))
}

/// A fresh SQLite database in a temp file, seeded.
pub async fn sqlite_file() -> Option<(SqlitePool, Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("orders.db").display()
    );
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    seed!(pool);
    Some((pool, Guard::Dir(dir)))
}

/// A fresh schema in the test PostgreSQL, seeded; `None` (skipped) without
/// `DATABASE_URL`, except under `CI=true`, where that is a failure.
pub async fn postgres() -> Option<(PgPool, Guard)> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "DATABASE_URL is not set: under CI the PostgreSQL tests must run (scripts/test starts one)"
        );
        eprintln!("skipped: DATABASE_URL is not set (`eval \"$(scripts/pg start)\"` starts one)");
        return None;
    };
    let schema = format!("chaos_test_{}_{}", std::process::id(), next());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let search_path = format!("SET search_path TO {schema}");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let sql = search_path.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    seed!(pool);
    admin.close().await;
    Some((pool, Guard::Schema(url, schema)))
}

/// Keeps a test's database alive, and drops a PostgreSQL schema at the end.
pub enum Guard {
    None,
    Dir(tempfile::TempDir),
    Schema(String, String),
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Schema(url, schema) = self {
            let (url, schema) = (url.clone(), schema.clone());
            // Best effort, on a thread and a connection of its own: the test's runtime
            // is blocked here.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        use sqlx::Connection;
                        let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
                            return;
                        };
                        let sql = format!("DROP SCHEMA {schema} CASCADE");
                        let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    })
            })
            .join();
        }
    }
}

/// An engine with these YAML rules.
pub fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

/// How many times a rule injected.
pub fn injected(chaos: &Chaos, id: &str) -> u64 {
    counters(chaos, id).injected
}

/// How many statements a rule matched.
pub fn matched(chaos: &Chaos, id: &str) -> u64 {
    counters(chaos, id).matched
}

/// The active injections of a rule.
pub fn active(chaos: &Chaos, id: &str) -> u32 {
    counters(chaos, id).active
}

fn counters(chaos: &Chaos, id: &str) -> chaos_core::RuleCounters {
    chaos
        .snapshot()
        .rules
        .iter()
        .find(|r| r.rule.id == id)
        .map(|r| r.counters)
        .unwrap_or_else(|| panic!("no rule {id}"))
}
