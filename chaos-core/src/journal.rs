//! The journal of injections (feature `test-util`): what tests assert on.

use std::collections::VecDeque;
use std::sync::Mutex;

const JOURNAL_CAP: usize = 100_000;

/// One injection, as the journal recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The rule id (`x-chaos` for a directive).
    pub rule: String,
    /// The point.
    pub point: String,
    /// The target.
    pub target: String,
    /// The fault, e.g. `abort 503`.
    pub fault: String,
    /// The scope (scenario tag), if any.
    pub scope: Option<String>,
    /// Whether it was only a shadow decision.
    pub shadow: bool,
}

/// The last 100 000 injections, oldest first.
#[derive(Default)]
pub(crate) struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<JournalEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, entry: JournalEntry) {
        let mut j = self.lock();
        if j.len() >= JOURNAL_CAP {
            j.pop_front();
        }
        j.push_back(entry);
    }

    pub(crate) fn entries(&self, scope: Option<&str>) -> Vec<JournalEntry> {
        self.lock()
            .iter()
            .filter(|e| scope.is_none_or(|s| e.scope.as_deref() == Some(s)))
            .cloned()
            .collect()
    }

    pub(crate) fn take(&self) -> Vec<JournalEntry> {
        self.lock().drain(..).collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
