//! `ChaosPool`, and the connections and transactions taken from it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use chaos_core::{Chaos, Decision};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Execute, Executor, Pool, SqlStr, Transaction};

use crate::inject::{self, Target};
use crate::query::Rebuilt;

/// A [`sqlx::Pool`] whose statements go through chaos (point `sql`, named by `target`).
///
/// Query code does not change: `sqlx::query(..).fetch_all(&pool)` works with a
/// `ChaosPool` as with the pool it wraps. It derefs to the wrapped pool for everything
/// else (`size`, `close`, ...). [`begin`](ChaosPool::begin) and
/// [`acquire`](ChaosPool::acquire) give a [`ChaosTransaction`] and a
/// [`ChaosConnection`], whose statements go through chaos too.
///
/// **Not covered**: the wrapped pool used directly (`pool.inner()`, `&*pool`), and
/// `try_begin`, `try_acquire` and `begin_with` reached through `Deref`: those are sqlx's
/// own and see no fault.
pub struct ChaosPool<DB: Database> {
    inner: Pool<DB>,
    target: Target,
}

// Not derived: a derive would require `DB: Clone`, which the database types are not, and
// `pool.clone()` would then quietly clone the wrapped pool through `Deref`.
impl<DB: Database> Clone for ChaosPool<DB> {
    fn clone(&self) -> Self {
        ChaosPool {
            inner: self.inner.clone(),
            target: self.target.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for ChaosPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosPool")
            .field("target", &self.target.name)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<DB: Database> ChaosPool<DB> {
    /// Wraps `pool`, naming it `target` for the rules.
    pub fn new(pool: Pool<DB>, chaos: &Chaos, target: impl Into<String>) -> ChaosPool<DB> {
        ChaosPool {
            inner: pool,
            target: Target::new(chaos, Arc::from(target.into())),
        }
    }

    /// The steady state the wrapper records while the engine is armed (each statement:
    /// whether it failed, its latency, whether chaos injected into it): the engine's for
    /// point `sql` and this pool's name.
    pub fn steady_state(&self) -> std::sync::Arc<chaos_core::steady::SteadyState> {
        self.target.steady.clone()
    }

    /// The pool's name for the rules.
    pub fn target(&self) -> &str {
        &self.target.name
    }

    /// The wrapped pool. Statements run on it directly see no fault.
    pub fn inner(&self) -> &Pool<DB> {
        &self.inner
    }

    /// Gives the wrapped pool back.
    pub fn into_inner(self) -> Pool<DB> {
        self.inner
    }

    /// Starts a transaction whose statements go through chaos. `BEGIN` is itself a
    /// statement for the rules (`match: { sql: "BEGIN" }`), so a rule can fail it.
    ///
    /// # Errors
    ///
    /// sqlx's, or the injected fault.
    pub async fn begin(&self) -> Result<ChaosTransaction<'static, DB>, sqlx::Error> {
        self.gate("BEGIN").await?;
        Ok(ChaosTransaction {
            inner: self.inner.begin().await?,
            target: self.target.clone(),
        })
    }

    /// Takes a connection whose statements go through chaos.
    ///
    /// # Errors
    ///
    /// sqlx's (e.g. `PoolTimedOut`).
    pub async fn acquire(&self) -> Result<ChaosConnection<DB>, sqlx::Error> {
        Ok(ChaosConnection {
            inner: self.inner.acquire().await?,
            target: self.target.clone(),
        })
    }

    async fn gate(&self, sql: &'static str) -> Result<(), sqlx::Error> {
        gate(&self.target, sql).await
    }
}

/// Applies a decision for a statement that is not a query of the user's (`BEGIN`,
/// `COMMIT`): waits, or fails.
async fn gate(target: &Target, sql: &'static str) -> Result<(), sqlx::Error> {
    if !target.armed() {
        return Ok(());
    }
    match target.decide(sql) {
        (Decision::Pass, _) => Ok(()),
        (Decision::Inject(inj), obs) => {
            inject::future(target, inj, obs, || Box::pin(async { Ok(()) })).await
        }
    }
}

impl<DB: Database> Deref for ChaosPool<DB> {
    type Target = Pool<DB>;

    fn deref(&self) -> &Pool<DB> {
        &self.inner
    }
}

/// A pooled connection from [`ChaosPool::acquire`]; use it as `&mut conn`.
pub struct ChaosConnection<DB: Database> {
    inner: PoolConnection<DB>,
    target: Target,
}

impl<DB: Database> fmt::Debug for ChaosConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosConnection")
            .field("target", &self.target.name)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> ChaosConnection<DB> {
    /// Starts a transaction on this connection, through chaos like
    /// [`ChaosPool::begin`].
    ///
    /// # Errors
    ///
    /// sqlx's, or the injected fault.
    pub async fn begin(&mut self) -> Result<ChaosTransaction<'_, DB>, sqlx::Error> {
        gate(&self.target, "BEGIN").await?;
        let target = self.target.clone();
        Ok(ChaosTransaction {
            inner: sqlx::Connection::begin(&mut *self.inner).await?,
            target,
        })
    }

    /// The sqlx connection. Statements run on it directly see no fault.
    pub fn inner_mut(&mut self) -> &mut PoolConnection<DB> {
        &mut self.inner
    }

    /// Gives the sqlx connection back.
    pub fn into_inner(self) -> PoolConnection<DB> {
        self.inner
    }
}

/// A transaction from [`ChaosPool::begin`]; use it as `&mut tx` (not `&mut *tx`, which
/// does not compile with this type, so no statement slips past chaos unnoticed).
pub struct ChaosTransaction<'c, DB: Database> {
    inner: Transaction<'c, DB>,
    target: Target,
}

impl<DB: Database> fmt::Debug for ChaosTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosTransaction")
            .field("target", &self.target.name)
            .finish_non_exhaustive()
    }
}

impl<'c, DB: Database> ChaosTransaction<'c, DB> {
    /// Commits. `COMMIT` is a statement for the rules, so a rule can fail it (e.g. with
    /// `error: sqlstate:40001`, as PostgreSQL does for a serializable transaction); the
    /// transaction is then rolled back, as it is when a real commit fails.
    ///
    /// # Errors
    ///
    /// sqlx's, or the injected fault.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        if let Err(e) = gate(&self.target, "COMMIT").await {
            self.inner.rollback().await?;
            return Err(e);
        }
        self.inner.commit().await
    }

    /// Rolls back (never injected into).
    ///
    /// # Errors
    ///
    /// sqlx's.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// The sqlx transaction. Statements run on it directly see no fault.
    pub fn inner_mut(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.inner
    }
}

type Item<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

/// Runs a statement through chaos: `$pass` runs the query `$q` untouched; `$inject` is
/// the closure that runs it once the injection allows.
macro_rules! through_chaos {
    ($kind:ident, $target:expr, $query:ident, |$q:ident| $pass:expr, $inject:expr) => {{
        if !$target.armed() {
            let $q = $query;
            return $pass;
        }
        let $q = Rebuilt::split($query);
        match $target.decide($q.sql_str()) {
            (Decision::Pass, obs) => through_chaos!(@observe $kind, $target, obs, $pass),
            (Decision::Inject(inj), obs) => inject::$kind(&$target, inj, obs, $inject),
        }
    }};
    (@observe future, $target:expr, $obs:expr, $pass:expr) => {{
        inject::observed_future(&$target, $pass, $obs, false)
    }};
    (@observe stream, $target:expr, $obs:expr, $pass:expr) => {{
        inject::observed_stream(&$target, $pass, $obs, false)
    }};
}

impl<'p, DB> Executor<'p> for &'_ ChaosPool<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Item<DB>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        through_chaos!(
            stream,
            self.target,
            query,
            |q| (&self.inner).fetch_many(q),
            {
                let pool = self.inner.clone();
                move || (&pool).fetch_many(q)
            }
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        through_chaos!(
            future,
            self.target,
            query,
            |q| (&self.inner).fetch_optional(q),
            {
                let pool = self.inner.clone();
                move || (&pool).fetch_optional(q)
            }
        )
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        if !self.target.armed() {
            return (&self.inner).prepare_with(sql, parameters);
        }
        match self.target.decide(sql.as_str()) {
            (Decision::Pass, _) => (&self.inner).prepare_with(sql, parameters),
            (Decision::Inject(inj), obs) => {
                let pool = self.inner.clone();
                inject::future(&self.target, inj, obs, move || {
                    (&pool).prepare_with(sql, parameters)
                })
            }
        }
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        // Used by sqlx's compile-time tooling, not by queries: never injected into.
        (&self.inner).describe(sql)
    }
}

/// `Executor` for `&mut` of a wrapper holding something that derefs to the connection.
macro_rules! connection_executor {
    ($ty:ident $(<$lt:lifetime>)?) => {
        impl<'t, $($lt,)? DB> Executor<'t> for &'t mut $ty<$($lt,)? DB>
        where
            DB: Database,
            for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
        {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Item<DB>, sqlx::Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let $ty { inner, target } = self;
                let conn: &'t mut DB::Connection = &mut *inner;
                through_chaos!(stream, target, query, |q| conn.fetch_many(q), move || {
                    conn.fetch_many(q)
                })
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let $ty { inner, target } = self;
                let conn: &'t mut DB::Connection = &mut *inner;
                through_chaos!(future, target, query, |q| conn.fetch_optional(q), move || {
                    conn.fetch_optional(q)
                })
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
            where
                't: 'e,
            {
                let $ty { inner, target } = self;
                let conn: &'t mut DB::Connection = &mut *inner;
                if !target.armed() {
                    return conn.prepare_with(sql, parameters);
                }
                match target.decide(sql.as_str()) {
                    (Decision::Pass, _) => conn.prepare_with(sql, parameters),
                    (Decision::Inject(inj), obs) => {
                        inject::future(target, inj, obs, move || conn.prepare_with(sql, parameters))
                    }
                }
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
            where
                't: 'e,
            {
                let conn: &'t mut DB::Connection = &mut *self.inner;
                conn.describe(sql)
            }
        }
    };
}

connection_executor!(ChaosConnection);
connection_executor!(ChaosTransaction<'c>);
