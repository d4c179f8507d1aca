//! PostgreSQL only: the injected faults against what the real server does.

mod support;

use std::time::Duration;

use chaos_sqlx::{ChaosPool, ChaosSqlErrorExt};
use sqlx::Executor;
use support::engine;

/// What sqlx reports on a connection whose backend the server terminated, `pause` after
/// the termination.
async fn real_server_gone(pool: &sqlx::PgPool, pause: Duration) -> std::io::ErrorKind {
    let mut victim = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(pool)
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    // A read may get the server's FATAL 57P01 first; after it, the socket is closed.
    for _ in 0..3 {
        match victim.execute("SELECT 1").await.unwrap_err() {
            sqlx::Error::Io(io) => return io.kind(),
            sqlx::Error::Database(d) => assert_eq!(d.code().as_deref(), Some("57P01")),
            other => panic!("{other:?}"),
        }
    }
    panic!("no I/O error after the backend was terminated")
}

#[tokio::test]
async fn injected_broken_connections_look_like_a_terminated_backend() {
    let Some((raw, _db)) = support::postgres().await else {
        return;
    };
    // The kinds the real server gives, at once and after the close has landed.
    let mut real = Vec::new();
    for pause in [Duration::ZERO, Duration::from_millis(300)] {
        real.push(real_server_gone(&raw, pause).await);
    }

    let chaos = engine(
        "rules:\n  - { id: gone, point: sql, match: { sql: \"SELECT 1\" }, fault: { error: unavailable } }\n  - { id: cut, point: sql, match: { sql: \"SELECT 2\" }, fault: { drop: reset } }\n",
    );
    let pool = ChaosPool::new(raw, &chaos, "orders-db");
    // The real server gives one of the two kinds the injected errors use.
    use std::io::ErrorKind::{ConnectionReset, UnexpectedEof};
    for kind in &real {
        assert!([UnexpectedEof, ConnectionReset].contains(kind), "{kind:?}");
    }
    for (sql, kind) in [("SELECT 1", UnexpectedEof), ("SELECT 2", ConnectionReset)] {
        let injected = sqlx::query(sql).execute(&pool).await.unwrap_err();
        let sqlx::Error::Io(io) = &injected else {
            panic!("{injected:?}")
        };
        assert_eq!(io.kind(), kind, "{sql}");
        assert!(injected.is_injected());
    }
    eprintln!("kinds after pg_terminate_backend: {real:?}");
}

#[tokio::test]
async fn an_injected_57p01_matches_the_servers_own() {
    let Some((raw, _db)) = support::postgres().await else {
        return;
    };
    // The server's own answer to the victim's first read after pg_terminate_backend.
    let mut victim = raw.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&raw)
        .await
        .unwrap();
    let real = victim.execute("SELECT 1").await.unwrap_err();
    let real_db = real.as_database_error().expect("the server's FATAL");
    drop(victim);

    let chaos = engine("rules: [{ id: admin, point: sql, fault: { error: \"sqlstate:57P01\" } }]");
    let pool = ChaosPool::new(raw, &chaos, "orders-db");
    let injected = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    let injected_db = injected.as_database_error().unwrap();
    assert_eq!(injected_db.code(), real_db.code());
    assert_eq!(injected_db.message(), real_db.message());
    assert_eq!(injected_db.kind(), real_db.kind());
}
