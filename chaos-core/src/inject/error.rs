//! The error of an injected fault, as a caller meets it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::rules::{AbortKind, ErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Error(ErrorKind),
    Abort(AbortKind),
    Reset,
    Timeout,
}

/// The error of an injected fault at a generic injection point.
///
/// Opaque, with predicates; find it inside another error's chain with
/// [`InjectedFault::find`].
#[derive(Clone)]
pub struct InjectedFault {
    inner: Box<(Arc<str>, FaultKind)>,
}

impl InjectedFault {
    pub(crate) fn new(rule: Arc<str>, kind: FaultKind) -> InjectedFault {
        InjectedFault {
            inner: Box::new((rule, kind)),
        }
    }

    /// The rule that injected it (`x-chaos` for a directive).
    pub fn rule_id(&self) -> &str {
        &self.inner.0
    }

    /// `error: unavailable`.
    pub fn is_unavailable(&self) -> bool {
        self.inner.1 == FaultKind::Error(ErrorKind::Unavailable)
    }

    /// `error: timeout`, or a `drop: hang` that reached its ceiling.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.1,
            FaultKind::Error(ErrorKind::Timeout) | FaultKind::Timeout
        )
    }

    /// `drop: reset`.
    pub fn is_reset(&self) -> bool {
        self.inner.1 == FaultKind::Reset
    }

    /// The SQLSTATE of an `error: sqlstate:CODE`.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.inner.1 {
            FaultKind::Error(k) => k.sqlstate(),
            _ => None,
        }
    }

    /// The status of an `abort`.
    pub fn abort(&self) -> Option<AbortKind> {
        match self.inner.1 {
            FaultKind::Abort(a) => Some(a),
            _ => None,
        }
    }

    /// The error kind of an `error:` fault.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self.inner.1 {
            FaultKind::Error(k) => Some(k),
            _ => None,
        }
    }

    /// Finds an injected fault in an error or its `source()` chain (the same as
    /// [`ChaosErrorExt::injected_fault`]).
    ///
    /// ```
    /// use chaos_core::{Chaos, InjectedFault};
    /// use chaos_core::rules::{ErrorKind, Fault, Rule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("down", "cache", Fault::Error(ErrorKind::Unavailable))).unwrap();
    /// let err: Box<dyn std::error::Error> = chaos.inject("cache", "", async {}).await.unwrap_err().into();
    /// assert!(InjectedFault::find(&*err).is_some_and(InjectedFault::is_unavailable));
    /// # }
    /// ```
    ///
    /// An `std::io::Error` carrying a fault as its payload (`io::Error::new(kind, fault)`,
    /// as the sqlx and connector adapters report broken connections) is looked into:
    /// its own `source()` skips the payload. So is every wrapper an adapter taught it
    /// ([`look_inside`](Self::look_inside)).
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a InjectedFault> {
        // The list as it stands, held without a lock while the wrappers are looked into
        // (a nested read of a lock a writer waits on could block for good).
        let taught = INSIDE.load();
        let taught = taught.as_deref().map_or(&[][..], Vec::as_slice);
        find(err, taught, 0)
    }

    /// Teaches [`find`](Self::find) (and so [`ChaosErrorExt`]) a wrapper whose
    /// `source()` skips what it wraps: `inside` returns the wrapped error of an error of
    /// that type, `None` for any other error. Each adapter crate teaches its own when
    /// it is built (reqwest-middleware's and reqwest-retry's errors, sqlx's boxed
    /// database errors); `name` keeps it taught once.
    pub fn look_inside(name: &'static str, inside: Inside) {
        INSIDE.rcu(|all| {
            let mut all: Vec<(&'static str, Inside)> = all.as_deref().cloned().unwrap_or_default();
            if !all.iter().any(|(n, _)| *n == name) {
                all.push((name, inside));
            }
            Some(Arc::new(all))
        });
    }
}

/// A way into a wrapper error (see [`InjectedFault::look_inside`]).
pub type Inside = for<'a> fn(&'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)>;

/// The wrappers adapters taught [`InjectedFault::find`]. Read only on the error path,
/// without a lock or an allocation.
static INSIDE: ArcSwapOption<Vec<(&'static str, Inside)>> = ArcSwapOption::const_empty();

/// Wrappers inside wrappers looked into, at most.
const DEPTH: u8 = 16;

fn find<'a>(
    err: &'a (dyn StdError + 'static),
    taught: &[(&'static str, Inside)],
    depth: u8,
) -> Option<&'a InjectedFault> {
    if depth > DEPTH {
        return None;
    }
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(f) = e.downcast_ref::<InjectedFault>() {
            return Some(f);
        }
        if let Some(payload) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(f) = find(payload, taught, depth + 1)
        {
            return Some(f);
        }
        for (_, inside) in taught {
            if let Some(f) = inside(e).and_then(|inner| find(inner, taught, depth + 1)) {
                return Some(f);
            }
        }
        cur = e.source();
    }
    None
}

/// Finding the [`InjectedFault`] behind an error, however an adapter or its caller wrapped
/// it: for every error type, and for `dyn Error`. The adapter crates re-export it
/// (`chaos_reqwest::ChaosErrorExt`, `chaos_sqlx::ChaosSqlErrorExt`).
///
/// ```
/// use chaos_core::{Chaos, ChaosErrorExt};
/// use chaos_core::rules::{ErrorKind, Fault, Rule};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let chaos = Chaos::new();
/// chaos.add_rule(Rule::new("down", "cache", Fault::Error(ErrorKind::Unavailable))).unwrap();
/// let fault = chaos.inject("cache", "", async {}).await.unwrap_err();
/// let err = std::io::Error::other(fault);
/// assert!(err.is_injected());
/// assert_eq!(err.injected_fault().unwrap().rule_id(), "down");
/// assert!(!std::io::Error::other("disk full").is_injected());
/// # }
/// ```
pub trait ChaosErrorExt {
    /// The injected fault behind this error, if chaos caused it.
    fn injected_fault(&self) -> Option<&InjectedFault>;

    /// Whether chaos caused this error.
    fn is_injected(&self) -> bool {
        self.injected_fault().is_some()
    }
}

impl<E: StdError + 'static> ChaosErrorExt for E {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        InjectedFault::find(self)
    }
}

impl ChaosErrorExt for dyn StdError + 'static {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        InjectedFault::find(self)
    }
}

impl ChaosErrorExt for dyn StdError + Send + Sync + 'static {
    fn injected_fault(&self) -> Option<&InjectedFault> {
        InjectedFault::find(self)
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.1 {
            FaultKind::Error(k) => k.to_string(),
            FaultKind::Abort(a) => format!("abort {a}"),
            FaultKind::Reset => "connection reset".to_owned(),
            FaultKind::Timeout => "timed out".to_owned(),
        };
        write!(f, "injected fault: {what} (rule `{}`)", self.inner.0)
    }
}

impl fmt::Debug for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedFault")
            .field("rule", &self.inner.0)
            .field("kind", &self.inner.1)
            .finish()
    }
}

impl std::error::Error for InjectedFault {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_pointer_sized() {
        assert_eq!(
            std::mem::size_of::<InjectedFault>(),
            std::mem::size_of::<usize>()
        );
    }
}
