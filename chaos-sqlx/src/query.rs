//! Reading a query's SQL without losing the query.
//!
//! `Execute::sql` consumes the query, so the statement, the arguments and the persistence
//! flag are taken out first (in that order, the order sqlx's own executors read them) and
//! the query is handed on rebuilt from its parts.

use sqlx::error::BoxDynError;
use sqlx::{Database, Execute, SqlStr};

pub(crate) struct Rebuilt<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Rebuilt<DB> {
    pub(crate) fn split<'q, E: Execute<'q, DB>>(mut query: E) -> Rebuilt<DB> {
        let statement = query.statement().cloned();
        let arguments = Some(query.take_arguments());
        let persistent = query.persistent();
        Rebuilt {
            sql: query.sql(),
            statement,
            arguments,
            persistent,
        }
    }

    pub(crate) fn sql_str(&self) -> &str {
        self.sql.as_str()
    }
}

impl<'q, DB: Database> Execute<'q, DB> for Rebuilt<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}
