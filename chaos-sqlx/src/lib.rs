//! Failure injection for sqlx: chosen SQL statements slowed or failed on purpose, per
//! request, with errors that look like the database's own.

mod error;
mod inject;
mod pool;
mod query;

pub use self::error::ChaosSqlErrorExt;
pub use self::inject::InjectedDatabaseError;
pub use self::pool::{ChaosConnection, ChaosPool, ChaosTransaction};
