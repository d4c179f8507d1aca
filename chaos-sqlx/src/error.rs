//! Finding an injected fault in a `sqlx::Error`.

use chaos_core::InjectedFault;

use crate::InjectedDatabaseError;

/// Finds the [`InjectedFault`] behind a `sqlx::Error`, if chaos caused it.
///
/// Needed for database errors: sqlx's boxed `DatabaseError` ends its `source()` chain, so
/// [`InjectedFault::find`] cannot reach the fault behind an injected SQLSTATE.
///
/// ```
/// use chaos_sqlx::ChaosSqlErrorExt;
///
/// fn is_chaos(err: &sqlx::Error) -> bool {
///     err.injected_fault().is_some()
/// }
/// # assert!(!is_chaos(&sqlx::Error::PoolTimedOut));
/// ```
pub trait ChaosSqlErrorExt {
    /// The injected fault behind this error.
    fn injected_fault(&self) -> Option<&InjectedFault>;

    /// Whether chaos caused this error.
    fn is_injected(&self) -> bool {
        self.injected_fault().is_some()
    }
}

impl ChaosSqlErrorExt for sqlx::Error {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        match self {
            sqlx::Error::Database(db) => db
                .try_downcast_ref::<InjectedDatabaseError>()
                .map(InjectedDatabaseError::fault),
            other => InjectedFault::find(other),
        }
    }
}
