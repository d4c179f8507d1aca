//! Failure injection for [sqlx]: chosen SQL statements slowed or failed on purpose, per
//! request, with errors that look like the database's own, under the rules and the
//! request context of [`chaos_core`].
//!
//! Wrap the pool once; query code does not change:
//!
//! ```
//! use chaos_core::Chaos;
//! use chaos_sqlx::ChaosPool;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sqlx::Error> {
//! let chaos = Chaos::from_env(); // CHAOS_RULES=rules.yaml, watched
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let pool = ChaosPool::new(pool, &chaos, "orders-db");
//!
//! let n: i64 = sqlx::query_scalar("SELECT 40 + 2").fetch_one(&pool).await?;
//! assert_eq!(n, 42);
//! # Ok(()) }
//! ```
//!
//! Rules at point `sql` match the statement text (`match.sql`, a case-insensitive glob),
//! the pool's name (`target`) and the request's context, which the task carries (set by
//! chaos-tower's server layer for the request being served, or by a test with
//! [`ChaosContext::scope`](chaos_core::ChaosContext::scope)):
//!
//! ```yaml
//! rules:
//!   - id: orders-conflict
//!     point: sql
//!     target: orders-db
//!     match: { sql: "UPDATE orders*", scenario: gameday-7 }
//!     fault: { error: "sqlstate:40001" }
//!     first: 2            # fail twice, then let the retry through
//! ```
//!
//! # What the caller sees
//!
//! | fault | result |
//! |---|---|
//! | `delay` | the real result, later (fixed, range or log-normal) |
//! | `error: sqlstate:CODE` | `Err(sqlx::Error::Database)`: `code()` is the SQLSTATE, `message()` PostgreSQL's own text for the common ones (`40001` could not serialize access…, `40P01` deadlock detected, `57014` canceling statement due to statement timeout, `53300` sorry, too many clients already, `57P01` terminating connection due to administrator command), `kind()` its class (`23505` a unique violation, ...). The statement never reaches the database. |
//! | `error: unavailable` | `Err(sqlx::Error::Io)` of kind `UnexpectedEof`: what sqlx reports when the server went away (PostgreSQL 15 after `pg_terminate_backend`) |
//! | `drop: reset` | `Err(sqlx::Error::Io)` of kind `ConnectionReset`, the other kind seen then |
//! | `error: timeout` | `Err(sqlx::Error::PoolTimedOut)`, as an exhausted pool |
//! | `drop: hang` | nothing until the caller's timeout (the future is dropped, the rule's slot freed), the kill switch (then the statement runs) or `limits.max_hang` (then `Err(Io)` of kind `TimedOut`) |
//! | `abort`, `body` | `abort` as `error: unavailable`; `body` nothing (no body here) |
//!
//! The message of every injected error names its rule, so it is never taken for an organic
//! failure; [`ChaosSqlErrorExt::injected_fault`] tells for sure. Rows, results and errors of
//! statements that nothing matches are sqlx's own, untouched.
//!
//! # What is covered
//!
//! * Every statement run with `&pool` (`execute`, `fetch*`, `prepare`), with query code
//!   unchanged.
//! * Transactions: [`ChaosPool::begin`] gives a [`ChaosTransaction`]; its statements go
//!   through chaos, and so do `BEGIN` and `COMMIT` themselves (a rule matching `COMMIT` can
//!   fail a commit with `40001`, as a serializable PostgreSQL transaction does). Use it as
//!   `&mut tx`; `&mut *tx`, sqlx's usual form, does not compile with this type, so no
//!   statement slips past unnoticed.
//! * Connections: [`ChaosPool::acquire`] gives a [`ChaosConnection`], used as `&mut conn`.
//!
//! **Not covered**, by design: the wrapped pool used directly ([`ChaosPool::inner`],
//! `&*pool`), the connection inside a wrapper ([`ChaosConnection::inner_mut`],
//! [`ChaosTransaction::inner_mut`]), and sqlx's `try_begin`, `try_acquire` and
//! `begin_with` reached through `Deref`. `ROLLBACK` is never failed.
//!
//! # Cost
//!
//! With nothing armed a statement pays one relaxed atomic load. Armed, the query is taken
//! apart to read its SQL and put back together (no allocation for a `sqlx::query`; a
//! prepared statement given as the query is cloned), then one decision.
//!
//! # Feature flags
//!
//! Name | Description | Default?
//! ---|---|---
//! `postgres` | sqlx's `postgres` driver, as turning it on in your own sqlx dependency does | no
//! `sqlite` | sqlx's `sqlite` driver, likewise | no
//! `otel` | the engine's OpenTelemetry metrics (`chaos_core::otel`), for statements too | no
//!
//! `ChaosPool<DB>` works with any driver your sqlx dependency turns on (PostgreSQL and
//! SQLite are tested), with or without sqlx's `macros`: chaos-sqlx turns on sqlx's
//! `macros` itself, the one switch that makes sqlx-core and every driver agree on the
//! `Executor` trait's methods.
//!
//! This crate needs Rust 1.94, as sqlx 0.9 does.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod inject;
mod pool;
mod query;

pub use self::error::ChaosSqlErrorExt;
pub use self::inject::InjectedDatabaseError;
pub use self::pool::{ChaosConnection, ChaosPool, ChaosTransaction};
