//! Finding an injected fault in a `sqlx::Error`: the core's [`ChaosErrorExt`], taught
//! sqlx's boxed database errors.

use std::error::Error as StdError;

/// Finds the [`InjectedFault`](chaos_core::InjectedFault) behind a `sqlx::Error`, if chaos
/// caused it: the one trait of `chaos_core` (`ChaosErrorExt`), under this crate's name.
///
/// sqlx's boxed `DatabaseError` ends its `source()` chain; wrapping a pool teaches the
/// core's fault finder to look inside it, so an injected SQLSTATE is found too.
///
/// ```
/// use chaos_sqlx::ChaosSqlErrorExt;
///
/// fn is_chaos(err: &sqlx::Error) -> bool {
///     err.injected_fault().is_some()
/// }
/// # assert!(!is_chaos(&sqlx::Error::PoolTimedOut));
/// ```
pub use chaos_core::ChaosErrorExt as ChaosSqlErrorExt;
use chaos_core::InjectedFault;

/// Teaches the core's fault finder sqlx's boxed database errors.
pub(crate) fn teach() {
    InjectedFault::look_inside("sqlx::Error::Database", database_inside);
}

fn database_inside<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e.downcast_ref::<sqlx::Error>()? {
        sqlx::Error::Database(db) => Some(db.as_error()),
        _ => None,
    }
}
