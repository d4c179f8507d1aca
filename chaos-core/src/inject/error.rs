//! The error of an injected fault, as a caller meets it.

use std::fmt;
use std::sync::Arc;

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

    /// Finds an injected fault in an error or its `source()` chain.
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
    /// its own `source()` skips the payload.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a InjectedFault> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(f) = e.downcast_ref::<InjectedFault>() {
                return Some(f);
            }
            if let Some(payload) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                && let Some(f) = InjectedFault::find(payload)
            {
                return Some(f);
            }
            cur = e.source();
        }
        None
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
