//! A rule's runtime state: counters, scopes, expiry and abort. It survives reloads that
//! leave the rule unchanged.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::sync;
use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::time::Instant;

use crate::outcome::{AbortInfo, RuleOutcomes};
use crate::rules::Rule;

/// Scopes tracked per rule; past this the rule-wide counters are used.
const MAX_SCOPES: usize = 4096;

/// Counters for one scope (a scenario tag, or the rule itself).
#[derive(Default)]
pub(crate) struct ScopeCounters {
    pub(crate) seen: AtomicU64,
    pub(crate) hits: AtomicU64,
}

pub(crate) struct RuleState {
    pub(crate) id: Arc<str>,
    pub(crate) expires_at: Instant,
    pub(crate) matched: AtomicU64,
    pub(crate) injected: AtomicU64,
    pub(crate) shadowed: AtomicU64,
    pub(crate) skipped_by_limit: AtomicU64,
    pub(crate) expired_hits: AtomicU64,
    /// Injections in flight (see [`Permit`](super::permit::Permit)).
    pub(crate) active: AtomicU32,
    aborted: AtomicBool,
    abort: sync::Mutex<Option<AbortInfo>>,
    /// Its outcomes: the cohorts, guard, budget and ramp.
    pub(crate) outcomes: RuleOutcomes,
    pub(crate) rule_scope: ScopeCounters,
    scopes: Mutex<HashMap<Box<str>, Arc<ScopeCounters>>>,
    /// Its metric attributes, built once.
    #[cfg(feature = "otel")]
    pub(crate) attrs: Arc<crate::otel::RuleAttrs>,
}

pub(crate) enum ScopeRef<'a> {
    Rule(&'a ScopeCounters),
    Named(Arc<ScopeCounters>),
}

impl std::ops::Deref for ScopeRef<'_> {
    type Target = ScopeCounters;
    fn deref(&self) -> &ScopeCounters {
        match self {
            ScopeRef::Rule(s) => s,
            ScopeRef::Named(s) => s,
        }
    }
}

impl RuleState {
    pub(crate) fn new(rule: &Rule, loaded_at: Instant, expires_at: Instant) -> RuleState {
        RuleState {
            id: rule.id.as_str().into(),
            outcomes: RuleOutcomes::new(rule, loaded_at),
            expires_at,
            matched: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            shadowed: AtomicU64::new(0),
            skipped_by_limit: AtomicU64::new(0),
            expired_hits: AtomicU64::new(0),
            active: AtomicU32::new(0),
            aborted: AtomicBool::new(false),
            abort: sync::Mutex::new(None),
            rule_scope: ScopeCounters::default(),
            scopes: Mutex::new(HashMap::new()),
            #[cfg(feature = "otel")]
            attrs: crate::otel::RuleAttrs::new(rule),
        }
    }

    /// The counters of one scope; the rule-wide ones without a name, or past the cap.
    pub(crate) fn scope(&self, name: Option<&str>) -> ScopeRef<'_> {
        let Some(name) = name else {
            return ScopeRef::Rule(&self.rule_scope);
        };
        let mut map = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(name) {
            return ScopeRef::Named(s.clone());
        }
        if map.len() >= MAX_SCOPES {
            return ScopeRef::Rule(&self.rule_scope);
        }
        let s = Arc::new(ScopeCounters::default());
        map.insert(name.into(), s.clone());
        ScopeRef::Named(s)
    }

    /// Aborts the rule; `false` if it already was.
    pub(crate) fn abort(&self, info: AbortInfo) -> bool {
        let mut a = self.abort.lock().unwrap_or_else(|p| p.into_inner());
        if self.aborted.swap(true, Ordering::SeqCst) {
            return false;
        }
        *a = Some(info);
        true
    }

    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    pub(crate) fn abort_info(&self) -> Option<AbortInfo> {
        self.abort.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
