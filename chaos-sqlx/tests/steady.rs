//! What the wrapper records in the engine's steady state: each statement's outcome, organic
//! and injected apart, for one-result queries and row streams alike.

mod support;

use std::time::Duration;

use chaos_core::ChaosContext;
use chaos_sqlx::ChaosPool;
use futures_util::TryStreamExt;
use support::{engine, sqlite_memory};

#[tokio::test]
async fn statements_are_recorded_by_pool_organic_and_injected_apart() {
    let chaos = engine(
        r#"
rules:
  - { id: conflict, point: sql, target: orders-db, match: { scenario: conflict }, fault: { error: "sqlstate:40001" } }
  - { id: slow, point: sql, target: orders-db, match: { scenario: slow }, fault: { delay: 5ms } }
"#,
    );
    let (raw, _guard) = sqlite_memory().await.unwrap();
    let pool = ChaosPool::new(raw, &chaos, "orders-db");

    for _ in 0..3 {
        let _: (i64,) = sqlx::query_as("SELECT total FROM orders WHERE id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    // A statement the database refuses is an organic error.
    assert!(
        sqlx::query("SELECT nope FROM nowhere")
            .fetch_all(&pool)
            .await
            .is_err()
    );
    // A row stream, read to its end.
    let rows: Vec<(i64,)> = sqlx::query_as::<_, (i64,)>("SELECT id FROM orders")
        .fetch(&pool)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);

    let tagged = |s: &str| ChaosContext::builder().scenario(s).build();
    let conflict = tagged("conflict")
        .scope(sqlx::query("UPDATE orders SET total = 1 WHERE id = 2").execute(&pool))
        .await;
    assert!(conflict.is_err());
    // A stream decides when it is made: make it inside the scope.
    let slow: Vec<(i64,)> = tagged("slow")
        .scope(async {
            sqlx::query_as::<_, (i64,)>("SELECT id FROM orders")
                .fetch(&pool)
                .try_collect()
                .await
        })
        .await
        .unwrap();
    assert_eq!(slow.len(), 3);

    let seen = chaos
        .steady_state("sql", "orders-db")
        .snapshot(Duration::from_secs(30));
    assert_eq!((seen.requests, seen.errors), (5, 1), "{seen:?}");
    assert_eq!((seen.injected, seen.injected_errors), (2, 1), "{seen:?}");
    assert_eq!(pool.steady_state().snapshot(Duration::from_secs(30)), seen);
}
