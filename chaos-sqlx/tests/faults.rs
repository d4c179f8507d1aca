//! Every fault as the caller sees it, with query code unchanged, on real SQLite (in memory
//! and on a temp file) and real PostgreSQL. One body of tests, run once per database.

mod support;

/// The tests, for a database set up by `$setup` (an async fn giving `Option<(Pool, Guard)>`;
/// `None` means skipped).
macro_rules! database_tests {
    ($name:ident, $setup:path) => {
        mod $name {
            use std::time::{Duration, Instant};

            use chaos_core::testing::Scenario;
            use chaos_core::Chaos;
            use chaos_sqlx::{ChaosPool, ChaosSqlErrorExt};
            use sqlx::Row;

            use crate::support::{active, engine, injected, matched};

                        const ALL: &str = "SELECT id, status, total FROM orders ORDER BY id";

            /// Every order, through any executor.
            macro_rules! orders {
                ($x:expr) => {
                    sqlx::query_as::<_, (i64, String, i64)>(ALL).fetch_all($x)
                };
            }

            fn code(err: &sqlx::Error) -> String {
                err.as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned())
                    .unwrap_or_else(|| panic!("not a database error: {err:?}"))
            }

            #[tokio::test]
            async fn sqlstate_errors_look_like_the_databases_own() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    r#"
rules:
  - { id: serial, point: sql, target: orders-db, match: { sql: "UPDATE orders SET status = 'paid'*" }, fault: { error: "sqlstate:40001" } }
  - { id: deadlock, point: sql, match: { sql: "UPDATE orders SET total*" }, fault: { error: "sqlstate:40P01" } }
  - { id: canceled, point: sql, match: { sql: "SELECT total*" }, fault: { error: "sqlstate:57014" } }
  - { id: full, point: sql, match: { sql: "SELECT status*" }, fault: { error: "sqlstate:53300" } }
"#,
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                let err = sqlx::query("UPDATE orders SET status = 'paid' WHERE id = 1")
                    .execute(&pool)
                    .await
                    .unwrap_err();
                assert_eq!(code(&err), "40001");
                let db = err.as_database_error().unwrap();
                assert_eq!(db.message(), "could not serialize access due to concurrent update");
                assert_eq!(db.kind(), sqlx::error::ErrorKind::Other);
                assert!(err.to_string().contains("rule `serial`"), "{err}");
                assert_eq!(err.injected_fault().unwrap().sqlstate(), Some("40001"));
                // However the application carries the error on (boxed as a `dyn Error`), the
                // core's finder looks inside sqlx's boxed database error.
                let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
                assert_eq!(chaos_core::InjectedFault::find(&*boxed).unwrap().rule_id(), "serial");

                let err = sqlx::query("UPDATE orders SET total = total + 1")
                    .execute(&pool)
                    .await
                    .unwrap_err();
                assert_eq!(code(&err), "40P01");
                let err = sqlx::query_scalar::<_, i64>("SELECT total FROM orders WHERE id = 1")
                    .fetch_one(&pool)
                    .await
                    .unwrap_err();
                assert_eq!(code(&err), "57014");
                let err = sqlx::query("SELECT status FROM orders")
                    .fetch_all(&pool)
                    .await
                    .unwrap_err();
                assert_eq!(code(&err), "53300");

                // Nothing ran: the rows are as seeded.
                assert_eq!(orders!(pool.inner()).await.unwrap()[0].1, "open");
                assert_eq!(orders!(pool.inner()).await.unwrap()[0].2, 100);
            }

            #[tokio::test]
            async fn broken_connections_and_pool_timeouts() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    r#"
rules:
  - { id: gone, point: sql, match: { sql: "SELECT id*" }, fault: { error: unavailable } }
  - { id: cut, point: sql, match: { sql: "SELECT status*" }, fault: { drop: reset } }
  - { id: busy, point: sql, match: { sql: "SELECT total*" }, fault: { error: timeout } }
"#,
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                use std::io::ErrorKind::{ConnectionReset, UnexpectedEof};
                for (sql, rule, kind) in [
                    ("SELECT id FROM orders", "gone", UnexpectedEof),
                    ("SELECT status FROM orders", "cut", ConnectionReset),
                ] {
                    let err = sqlx::query(sql).fetch_all(&pool).await.unwrap_err();
                    let sqlx::Error::Io(io) = &err else { panic!("{err:?}") };
                    assert_eq!(io.kind(), kind, "{rule}");
                    assert_eq!(err.injected_fault().unwrap().rule_id(), rule);
                }
                let err = sqlx::query("SELECT total FROM orders").fetch_optional(&pool).await.unwrap_err();
                assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
            }

            #[tokio::test]
            async fn only_the_matching_statement_is_slowed() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    "rules: [{ id: slow-updates, point: sql, target: orders-db, match: { sql: \"UPDATE orders*\" }, fault: { delay: 300ms } }]",
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                let t = Instant::now();
                sqlx::query("update orders set status = 'paid' where id = $1")
                    .bind(1_i64)
                    .execute(&pool)
                    .await
                    .unwrap();
                assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
                let rows = orders!(&pool).await.unwrap();
                assert_eq!(rows[0].1, "paid", "the update ran after its delay");
                // The SELECT was seen and left alone; the UPDATE (lowercase) was matched.
                assert_eq!(matched(&chaos, "slow-updates"), 1);
                assert_eq!(injected(&chaos, "slow-updates"), 1);
                // Another pool's name does not match the rule's target.
                let other = ChaosPool::new(pool.inner().clone(), &chaos, "audit-db");
                sqlx::query("UPDATE orders SET total = 1 WHERE id = 3").execute(&other).await.unwrap();
                assert_eq!(injected(&chaos, "slow-updates"), 1);
            }

            #[tokio::test]
            async fn a_retry_loop_on_40001_succeeds_after_two_failures() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    "rules: [{ id: conflict, point: sql, match: { sql: \"UPDATE orders*\" }, fault: { error: \"sqlstate:40001\" }, first: 2 }]",
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let mut tx = pool.begin().await.unwrap();
                    let res = sqlx::query("UPDATE orders SET total = total + 10 WHERE id = $1")
                        .bind(2_i64)
                        .execute(&mut tx)
                        .await;
                    match res {
                        Ok(_) => {
                            tx.commit().await.unwrap();
                            break;
                        }
                        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("40001") => {
                            tx.rollback().await.unwrap();
                            assert!(attempts < 10, "never succeeded");
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                assert_eq!(attempts, 3);
                assert_eq!(injected(&chaos, "conflict"), 2);
                // Exactly one increment landed.
                assert_eq!(orders!(&pool).await.unwrap()[1].2, 260);
            }

            #[tokio::test]
            async fn transactions_and_connections_go_through_chaos() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    r#"
rules:
  - { id: stmt, point: sql, match: { sql: "DELETE*" }, fault: { error: "sqlstate:40P01" } }
  - { id: commit, point: sql, match: { sql: COMMIT }, fault: { error: "sqlstate:40001" } }
"#,
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                // A statement in a transaction.
                let mut tx = pool.begin().await.unwrap();
                let err = sqlx::query("DELETE FROM orders").execute(&mut tx).await.unwrap_err();
                assert_eq!(code(&err), "40P01");
                // A failed COMMIT rolls the transaction back, as a real one does.
                sqlx::query("UPDATE orders SET status = 'void'").execute(&mut tx).await.unwrap();
                let err = tx.commit().await.unwrap_err();
                assert_eq!(code(&err), "40001");
                assert!(orders!(&pool).await.unwrap().iter().all(|o| o.1 != "void"));
                // A connection taken from the pool.
                let mut conn = pool.acquire().await.unwrap();
                let err = sqlx::query("DELETE FROM orders").execute(&mut conn).await.unwrap_err();
                assert_eq!(code(&err), "40P01");
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(n, 3);
                drop(conn);
                // What is not covered: the wrapped pool used directly.
                sqlx::query("DELETE FROM orders WHERE id = 3").execute(pool.inner()).await.unwrap();
                assert_eq!(injected(&chaos, "stmt"), 2);
            }

            #[tokio::test]
            async fn a_query_timeout_cuts_an_injected_hang() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine("rules: [{ id: stuck, point: sql, match: { sql: \"SELECT*\" }, fault: { drop: hang } }]");
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                let t = Instant::now();
                let res = tokio::time::timeout(Duration::from_millis(200), orders!(&pool)).await;
                assert!(res.is_err(), "the hang should outlast the timeout");
                assert!(t.elapsed() >= Duration::from_millis(200));
                assert_eq!(active(&chaos, "stuck"), 0, "the slot is freed with the query");
                // The same with a stream read row by row.
                let res = tokio::time::timeout(Duration::from_millis(100), async {
                    use futures_util::TryStreamExt;
                    sqlx::query(ALL).fetch(&pool).try_next().await
                })
                .await;
                assert!(res.is_err());
                assert_eq!(active(&chaos, "stuck"), 0);
            }

            #[tokio::test]
            async fn a_hang_without_a_timeout_ends_at_the_ceiling() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    "limits: { max_hang: 30s }\nrules: [{ id: stuck, point: sql, fault: { drop: hang } }]",
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                tokio::time::pause();
                let start = tokio::time::Instant::now();
                let err = orders!(&pool).await.unwrap_err();
                let sqlx::Error::Io(io) = &err else { panic!("{err:?}") };
                assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
                assert!(err.injected_fault().unwrap().is_timeout());
                // At the ceiling, give or take the timer's millisecond.
                let took = start.elapsed();
                assert!(took >= Duration::from_secs(30) && took < Duration::from_millis(30_010), "{took:?}");
            }

            #[tokio::test]
            async fn a_scenario_fault_does_not_touch_a_concurrent_task_without_it() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = Chaos::new();
                let scenario = Scenario::fresh();
                let _rule = chaos
                    .install(
                        chaos_core::rules::Rule::new(
                            "scoped",
                            "sql",
                            chaos_core::rules::Fault::Error(chaos_core::rules::ErrorKind::SqlState(*b"40001")),
                        )
                        .with_match(scenario.matcher()),
                    )
                    .unwrap();
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                // Clones are wrapped pools too (a derived Clone would have cloned the inner one).
                let (p1, p2): (ChaosPool<_>, ChaosPool<_>) = (pool.clone(), pool.clone());
                let tagged = tokio::spawn(scenario.context().scope(async move {
                    let mut results = Vec::new();
                    for _ in 0..20 {
                        results.push(orders!(&p1).await.is_err());
                        tokio::task::yield_now().await;
                    }
                    results
                }));
                let plain = tokio::spawn(async move {
                    let mut results = Vec::new();
                    for _ in 0..20 {
                        results.push(orders!(&p2).await.is_ok());
                        tokio::task::yield_now().await;
                    }
                    results
                });
                assert!(tagged.await.unwrap().iter().all(|failed| *failed));
                assert!(plain.await.unwrap().iter().all(|ok| *ok));
                assert_eq!(chaos.journal_for(scenario.name()).len(), 20);
            }

            #[tokio::test]
            async fn no_fault_leaks_past_the_kill_switch() {
                let Some((raw, _db)) = $setup().await else { return };
                let chaos = engine(
                    r#"
rules:
  - { id: stuck, point: sql, match: { sql: "SELECT id, status*" }, fault: { drop: hang } }
  - { id: fail, point: sql, match: { sql: "UPDATE*" }, fault: { error: "sqlstate:40001" } }
"#,
                );
                let pool = ChaosPool::new(raw, &chaos, "orders-db");
                let hung = tokio::spawn({
                    let pool = pool.clone();
                    async move { orders!(&pool).await }
                });
                let deadline = Instant::now() + Duration::from_secs(20);
                while active(&chaos, "stuck") == 0 {
                    assert!(Instant::now() < deadline, "the call never hung");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                chaos.kill();
                // The hung query goes ahead as if nothing had been injected.
                assert_eq!(hung.await.unwrap().unwrap().len(), 3);
                for _ in 0..10 {
                    sqlx::query("UPDATE orders SET total = total WHERE id = 1").execute(&pool).await.unwrap();
                }
                assert_eq!(orders!(&pool).await.unwrap().len(), 3);
                assert_eq!(injected(&chaos, "fail"), 0);
            }

            #[tokio::test]
            async fn pass_through_results_are_identical() {
                let Some((raw, _db)) = $setup().await else { return };
                // Rules that match nothing here, so the engine is armed and decides each time.
                let chaos = engine(
                    "rules: [{ id: other, point: sql, match: { sql: \"DELETE FROM audit*\" }, fault: { error: unavailable } }]",
                );
                let pool = ChaosPool::new(raw.clone(), &chaos, "orders-db");
                assert_eq!(orders!(&pool).await.unwrap(), orders!(&raw).await.unwrap());
                let q = "SELECT id, total * 2 AS doubled FROM orders WHERE status = $1 ORDER BY id";
                let wrapped: Vec<(i64, i64)> = sqlx::query(q)
                    .bind("open")
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let bare: Vec<(i64, i64)> = sqlx::query(q)
                    .bind("open")
                    .fetch_all(&raw)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                assert_eq!(wrapped, bare);
                assert_eq!(wrapped, vec![(1, 200), (3, 150)]);
                let one: Option<(i64, String, i64)> = sqlx::query_as("SELECT id, status, total FROM orders WHERE id = $1")
                    .bind(2_i64)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                assert_eq!(one, Some((2, "paid".to_owned(), 250)));
                let done = sqlx::query("UPDATE orders SET total = total WHERE status = 'open'")
                    .execute(&pool)
                    .await
                    .unwrap();
                assert_eq!(done.rows_affected(), 2);
                assert_eq!(matched(&chaos, "other"), 0);
            }
        }
    };
}

database_tests!(sqlite_memory, crate::support::sqlite_memory);
database_tests!(sqlite_file, crate::support::sqlite_file);
database_tests!(postgres, crate::support::postgres);
