//! A read path that falls back to a cache when its query is slow, proven with chaos-sqlx.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin sqlx-fallback
//! ```
//!
//! `PriceReader` reads a price from the database with a 100 ms budget and answers from
//! its cache (the last price it read) when the query does not make it. The program slows
//! the `SELECT` with a rule scoped to a test scenario and checks that tagged reads fall
//! back while untagged reads and writes at the same moment are untouched; then it fails
//! the query with a database error and checks the same. It exits 1 if any outcome
//! differs. The database is SQLite in memory, so there is nothing to install.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::rules::{Delay, ErrorKind, Fault, Rule};
use chaos_core::testing::Scenario;
use chaos_sqlx::ChaosPool;
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;

const BUDGET: Duration = Duration::from_millis(100);

/// Where a price came from.
#[derive(Debug, PartialEq)]
enum Source {
    Database,
    Cache,
}

struct PriceReader {
    pool: ChaosPool<Sqlite>,
    cache: Mutex<HashMap<i64, i64>>,
}

impl PriceReader {
    /// The price of `sku`: from the database within the budget, else the cached one.
    async fn price(&self, sku: i64) -> Option<(i64, Source)> {
        let query = sqlx::query_scalar::<_, i64>("SELECT price FROM prices WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.pool);
        match tokio::time::timeout(BUDGET, query).await {
            Ok(Ok(price)) => {
                self.cache.lock().ok()?.insert(sku, price);
                Some((price, Source::Database))
            }
            // Slow or failed: the cache answers.
            Ok(Err(_)) | Err(_) => {
                let cached = *self.cache.lock().ok()?.get(&sku)?;
                Some((cached, Source::Cache))
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => {
            println!("\nthe read path fell back every time it had to, and only then");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let chaos = Chaos::new();
    let raw = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite:file:prices?mode=memory&cache=shared")
        .await?;
    sqlx::query("CREATE TABLE prices (sku INTEGER PRIMARY KEY, price INTEGER NOT NULL)")
        .execute(&raw)
        .await?;
    sqlx::query("INSERT INTO prices VALUES (7, 4200)")
        .execute(&raw)
        .await?;
    let reader = PriceReader {
        pool: ChaosPool::new(raw, &chaos, "prices-db"),
        cache: Mutex::new(HashMap::new()),
    };

    let mut all_ok = true;
    let mut check = |name: &str, got: &Option<(i64, Source)>, want: (i64, Source)| {
        let ok = got.as_ref() == Some(&want);
        all_ok &= ok;
        println!(
            "{name:<58} {:<28} {}",
            format!("{got:?}"),
            if ok { "as expected" } else { "UNEXPECTED" }
        );
    };

    // Warm the cache.
    check(
        "no rule: the database answers",
        &reader.price(7).await,
        (4200, Source::Database),
    );
    // The price changes in the database; the cache still holds the old one.
    sqlx::query("UPDATE prices SET price = 4500 WHERE sku = 7")
        .execute(&reader.pool)
        .await?;

    for (what, fault) in [
        (
            "slowed past the budget",
            Fault::Delay(Delay::Fixed(Duration::from_millis(500))),
        ),
        (
            "failed with 57014",
            Fault::Error(ErrorKind::SqlState(*b"57014")),
        ),
    ] {
        let scenario = Scenario::fresh();
        let _rule = chaos.install(
            Rule::new("prices-read", "sql", fault)
                .with_target("prices-db")
                .with_match(scenario.matcher().sql("SELECT price*")),
        )?;
        let tagged = scenario.context().scope(reader.price(7));
        // Another reader (its own cache) reads at the same moment, untagged.
        let other = PriceReader {
            pool: reader.pool.clone(),
            cache: Mutex::new(HashMap::new()),
        };
        let (tagged, untagged) = tokio::join!(tagged, other.price(7));
        check(
            &format!("query {what}: the cache answers"),
            &tagged,
            (4200, Source::Cache),
        );
        check(
            &format!("query {what}, untagged read: untouched"),
            &untagged,
            (4500, Source::Database),
        );
        // Writes in the same scenario are not matched by the rule.
        let write = scenario
            .context()
            .scope(
                sqlx::query("UPDATE prices SET price = price WHERE sku = 7").execute(&reader.pool),
            )
            .await;
        let rows = write.map(|done| done.rows_affected()).ok();
        check(
            &format!("query {what}, tagged write: untouched"),
            &rows.map(|n| (n as i64, Source::Database)),
            (1, Source::Database),
        );
    }
    Ok(all_ok)
}
