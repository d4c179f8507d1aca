//! Deciding for a statement, and applying the fault around the real call.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use chaos_core::rules::{DropKind, ErrorKind, Fault};
use chaos_core::{Chaos, ChaosContext, Decision, InjectedFault, Injection, Point, RequestView};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, stream};
use sqlx::error::{DatabaseError, ErrorKind as DbErrorKind};

/// The engine and the pool's name: what every wrapper carries.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) chaos: Chaos,
    pub(crate) name: Arc<str>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Whether anything could be injected: one relaxed load.
    #[inline]
    pub(crate) fn armed(&self) -> bool {
        self.chaos.is_armed()
    }

    /// Decides for a statement, with the task's chaos context.
    pub(crate) fn decide(&self, sql: &str) -> Decision {
        ChaosContext::with_current(|ctx| {
            self.chaos.decide(
                &RequestView::new(Point::Sql, &self.name)
                    .sql(sql)
                    .context(ctx),
            )
        })
    }
}

/// The error to fail the statement with at once, if the fault is one; otherwise the
/// statement runs after [`wait`] (delay, pause, hang; `body` faults have nothing to do
/// here and pass).
fn immediate_error(inj: &Injection) -> Option<sqlx::Error> {
    match inj.fault() {
        Fault::Delay(_) | Fault::Pause(_) | Fault::Drop(DropKind::Hang) | Fault::Body(_) => None,
        Fault::Error(ErrorKind::SqlState(_)) => Some(database_error(inj)),
        Fault::Error(ErrorKind::Timeout) => Some(sqlx::Error::PoolTimedOut),
        // A reset connection: what sqlx reports when its next write or read meets the
        // server's RST.
        Fault::Drop(DropKind::Reset) => {
            Some(connection_broken(inj, io::ErrorKind::ConnectionReset))
        }
        // unavailable, an abort (no HTTP status means anything here), new kinds: the
        // server went away, which sqlx reports as an end of file where it expected a
        // message. Both kinds are what PostgreSQL 15 gives after `pg_terminate_backend`,
        // depending on timing (a test checks).
        _ => Some(connection_broken(inj, io::ErrorKind::UnexpectedEof)),
    }
}

/// Waits as the fault asks; a hang that reached its ceiling fails as a timed-out read.
async fn wait(inj: &Injection) -> Result<(), sqlx::Error> {
    inj.proceed()
        .await
        .map_err(|fault| sqlx::Error::Io(io::Error::new(io::ErrorKind::TimedOut, fault)))
}

/// `Error::Io` as sqlx reports a connection the server closed, carrying the fault.
fn connection_broken(inj: &Injection, kind: io::ErrorKind) -> sqlx::Error {
    let fault = inj.to_error().unwrap_or_else(|| inj.reset_error());
    sqlx::Error::Io(io::Error::new(kind, fault))
}

fn database_error(inj: &Injection) -> sqlx::Error {
    let fault = inj.to_error().unwrap_or_else(|| inj.reset_error());
    sqlx::Error::Database(Box::new(InjectedDatabaseError { fault }))
}

/// Applies the injection around a statement that yields one result.
pub(crate) fn future<'e, T, F>(inj: Injection, run: F) -> BoxFuture<'e, Result<T, sqlx::Error>>
where
    T: Send + 'e,
    F: FnOnce() -> BoxFuture<'e, Result<T, sqlx::Error>> + Send + 'e,
{
    match immediate_error(&inj) {
        Some(e) => Box::pin(std::future::ready(Err(e))),
        None => Box::pin(async move {
            wait(&inj).await?;
            let out = run().await;
            // The rule's concurrency slot is held until the statement is done.
            drop(inj);
            out
        }),
    }
}

/// Applies the injection around a statement that yields a stream of results.
pub(crate) fn stream<'e, T, F>(inj: Injection, run: F) -> BoxStream<'e, Result<T, sqlx::Error>>
where
    T: Send + 'e,
    F: FnOnce() -> BoxStream<'e, Result<T, sqlx::Error>> + Send + 'e,
{
    match immediate_error(&inj) {
        Some(e) => Box::pin(stream::once(std::future::ready(Err(e)))),
        None => Box::pin(
            stream::once(async move {
                match wait(&inj).await {
                    // The stream holds the rule's concurrency slot until it ends.
                    Ok(()) => run()
                        .map(move |item| {
                            let _slot = &inj;
                            item
                        })
                        .boxed(),
                    Err(e) => stream::once(std::future::ready(Err(e))).boxed(),
                }
            })
            .flatten(),
        ),
    }
}

/// The `Error::Database` of an injected `error: sqlstate:CODE`: `code()` is the SQLSTATE,
/// `message()` what PostgreSQL says for it, `kind()` its class (unique, foreign key,
/// not-null or check violation, else other). Find the fault in the `sqlx::Error` with
/// [`ChaosSqlErrorExt`](crate::ChaosSqlErrorExt) (sqlx's box around database errors ends
/// the `source()` chain, so `InjectedFault::find` stops short of it).
#[derive(Debug)]
pub struct InjectedDatabaseError {
    fault: InjectedFault,
}

impl InjectedDatabaseError {
    /// The injected fault.
    pub fn fault(&self) -> &InjectedFault {
        &self.fault
    }

    fn sqlstate(&self) -> &str {
        self.fault.sqlstate().unwrap_or("XX000")
    }
}

/// PostgreSQL's own message for the SQLSTATEs tests reach for most.
fn message_for(code: &str) -> &'static str {
    match code {
        "40001" => "could not serialize access due to concurrent update",
        "40P01" => "deadlock detected",
        "57014" => "canceling statement due to statement timeout",
        "53300" => "sorry, too many clients already",
        "57P01" => "terminating connection due to administrator command",
        "55P03" => "could not obtain lock on row in relation",
        "23505" => "duplicate key value violates unique constraint",
        "23503" => "insert or update violates foreign key constraint",
        "23502" => "null value violates not-null constraint",
        "23514" => "new row violates check constraint",
        "08006" => "connection failure",
        "25P02" => {
            "current transaction is aborted, commands ignored until end of transaction block"
        }
        _ => "injected database error",
    }
}

impl fmt::Display for InjectedDatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (SQLSTATE {}, injected by chaos rule `{}`)",
            message_for(self.sqlstate()),
            self.sqlstate(),
            self.fault.rule_id()
        )
    }
}

impl StdError for InjectedDatabaseError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.fault)
    }
}

impl DatabaseError for InjectedDatabaseError {
    fn message(&self) -> &str {
        message_for(self.sqlstate())
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.sqlstate()))
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> DbErrorKind {
        match self.sqlstate() {
            "23505" => DbErrorKind::UniqueViolation,
            "23503" => DbErrorKind::ForeignKeyViolation,
            "23502" => DbErrorKind::NotNullViolation,
            "23514" => DbErrorKind::CheckViolation,
            _ => DbErrorKind::Other,
        }
    }
}
