//! Exit codes, as `--help` documents them.

/// Everything asked was done.
pub(crate) const OK: u8 = 0;
/// A file was refused, or an instance refused or could not be reached.
pub(crate) const FAILED: u8 = 1;
/// The command line or its environment is wrong (sysexits' EX_USAGE).
pub(crate) const USAGE: u8 = 64;
