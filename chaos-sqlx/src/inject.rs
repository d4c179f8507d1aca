//! Deciding for a statement, and applying the fault around the real call.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chaos_core::rules::ErrorKind;
use chaos_core::steady::SteadyState;
use chaos_core::{
    Chaos, ChaosContext, Decision, InjectedFault, Injection, Observation, OutboundCall, Point,
    RequestView,
};
use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, stream};
use sqlx::error::{DatabaseError, ErrorKind as DbErrorKind};

/// The engine, the pool's name and its steady state: what every wrapper carries.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) chaos: Chaos,
    pub(crate) name: Arc<str>,
    pub(crate) steady: Arc<SteadyState>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Target {
    pub(crate) fn new(chaos: &Chaos, name: Arc<str>) -> Target {
        chaos.declare("sql", &name);
        crate::error::teach();
        Target {
            steady: chaos.steady_state("sql", &name),
            chaos: chaos.clone(),
            name,
        }
    }

    /// Whether anything could be injected: one relaxed load.
    #[inline]
    pub(crate) fn armed(&self) -> bool {
        self.chaos.is_armed()
    }

    /// Decides for a statement through the engine's outbound sequence (the task's chaos
    /// context; nothing is forwarded); the observation records the statement's outcome.
    pub(crate) fn decide(&self, sql: &str) -> (Decision, Option<Observation>) {
        self.chaos.outbound(
            None,
            &mut Statement {
                pool: &self.name,
                sql,
                steady: &self.steady,
            },
        )
    }
}

/// A statement on its way to the database, as the engine's outbound sequence sees it.
struct Statement<'a> {
    pool: &'a str,
    sql: &'a str,
    steady: &'a SteadyState,
}

impl OutboundCall for Statement<'_> {
    /// A statement carries no headers.
    fn forward(&mut self, _: &ChaosContext) {}

    fn view<'a>(&'a self, ctx: Option<&'a ChaosContext>) -> RequestView<'a> {
        RequestView::new(Point::Sql, self.pool)
            .sql(self.sql)
            .context(ctx)
    }

    fn steady_state(&self) -> Option<&SteadyState> {
        Some(self.steady)
    }
}

/// An injected failure as sqlx reports it: the one place the faults meet sqlx's errors.
///
/// * `error: sqlstate:CODE`: `Error::Database` with that SQLSTATE and PostgreSQL's text;
/// * `error: timeout`: `PoolTimedOut`;
/// * `drop: reset`: `Error::Io(ConnectionReset)`, what sqlx reports when its next write or
///   read meets the server's RST;
/// * `error: unavailable`, an `abort` (no HTTP status means anything here): the server went
///   away, which sqlx reports as an end of file where it expected a message. Both kinds
///   are what PostgreSQL 15 gives after `pg_terminate_backend`, depending on timing (a
///   test checks);
/// * a `drop: hang` at its ceiling: `Error::Io(TimedOut)`.
fn sql_error(fault: InjectedFault) -> sqlx::Error {
    if fault.sqlstate().is_some() {
        return sqlx::Error::Database(Box::new(InjectedDatabaseError { fault }));
    }
    let kind = match fault.error_kind() {
        Some(ErrorKind::Timeout) => return sqlx::Error::PoolTimedOut,
        _ if fault.is_timeout() => io::ErrorKind::TimedOut,
        _ if fault.is_reset() => io::ErrorKind::ConnectionReset,
        _ => io::ErrorKind::UnexpectedEof,
    };
    sqlx::Error::Io(io::Error::new(kind, fault))
}

/// Runs `run` as the injection asks ([`Injection::run_with`]): fails at once, waits then
/// runs, or runs. The rule's concurrency slot is held until the statement is done.
async fn apply<T, F, Fut>(inj: Injection, run: F) -> Result<T, sqlx::Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    inj.run_with(run).await.map_err(sql_error)?
}

/// Applies the injection around a statement that yields one result, and records it.
pub(crate) fn future<'e, T, F>(
    target: &Target,
    inj: Injection,
    obs: Option<Observation>,
    run: F,
) -> BoxFuture<'e, Result<T, sqlx::Error>>
where
    T: Send + 'e,
    F: FnOnce() -> BoxFuture<'e, Result<T, sqlx::Error>> + Send + 'e,
{
    observed_future(target, apply(inj, run), obs, true)
}

/// Applies the injection around a statement that yields a stream of results, and records
/// it.
pub(crate) fn stream<'e, T, F>(
    target: &Target,
    inj: Injection,
    obs: Option<Observation>,
    run: F,
) -> BoxStream<'e, Result<T, sqlx::Error>>
where
    T: Send + 'e,
    F: FnOnce() -> BoxStream<'e, Result<T, sqlx::Error>> + Send + 'e,
{
    let failed = |fault| stream::once(std::future::ready(Err(sql_error(fault)))).boxed();
    let held = stream::once(async move {
        match inj.ready().await {
            Ok(inj) => holding(run(), inj),
            Err(fault) => failed(fault),
        }
    })
    .flatten();
    observed_stream(target, Box::pin(held), obs, true)
}

/// The stream holds the rule's concurrency slot until it ends.
fn holding<'e, T: Send + 'e>(
    rows: BoxStream<'e, Result<T, sqlx::Error>>,
    inj: Injection,
) -> BoxStream<'e, Result<T, sqlx::Error>> {
    rows.map(move |item| {
        let _slot = &inj;
        item
    })
    .boxed()
}

/// A statement recorded with its observation (the pool's steady state, the cohorts of
/// the rules it matched): whether it failed, how long it took.
pub(crate) fn observed_future<'e, T: Send + 'e>(
    target: &Target,
    fut: impl Future<Output = Result<T, sqlx::Error>> + Send + 'e,
    obs: Option<Observation>,
    injected: bool,
) -> BoxFuture<'e, Result<T, sqlx::Error>> {
    let target = target.clone();
    Box::pin(async move {
        let out = fut.await;
        if let Some(o) = obs {
            o.finish(&target.chaos, &target.steady, out.is_err(), injected);
        }
        out
    })
}

/// A stream of results recorded with its observation when it ends: an error if any item
/// was one. A stream dropped before its end (the caller read what it needed) counts as it
/// was until then.
pub(crate) fn observed_stream<'e, T: Send + 'e>(
    target: &Target,
    rows: BoxStream<'e, Result<T, sqlx::Error>>,
    obs: Option<Observation>,
    injected: bool,
) -> BoxStream<'e, Result<T, sqlx::Error>> {
    Box::pin(Observed {
        rows,
        target: target.clone(),
        obs,
        error: false,
        injected,
    })
}

struct Observed<'e, T> {
    rows: BoxStream<'e, Result<T, sqlx::Error>>,
    target: Target,
    obs: Option<Observation>,
    error: bool,
    injected: bool,
}

impl<T> Observed<'_, T> {
    fn record(&mut self) {
        if let Some(o) = self.obs.take() {
            o.finish(
                &self.target.chaos,
                &self.target.steady,
                self.error,
                self.injected,
            );
        }
    }
}

impl<T> Stream for Observed<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.rows.as_mut().poll_next(cx));
        match &item {
            Some(Err(_)) => self.error = true,
            Some(Ok(_)) => {}
            None => self.record(),
        }
        Poll::Ready(item)
    }
}

impl<T> Drop for Observed<'_, T> {
    fn drop(&mut self) {
        self.record();
    }
}

/// The `Error::Database` of an injected `error: sqlstate:CODE`: `code()` is the SQLSTATE,
/// `message()` what PostgreSQL says for it, `kind()` its class (unique, foreign key,
/// not-null or check violation, else other). Find the fault in the `sqlx::Error` with
/// [`ChaosSqlErrorExt`](crate::ChaosSqlErrorExt) (sqlx's box around database errors ends
/// the `source()` chain; a wrapped pool teaches the core's finder to look inside it).
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
