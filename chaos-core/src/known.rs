//! The (point, target) pairs this process has: declared by each adapter when it is built,
//! and noted when first seen for points whose target comes with each call (a reqwest host,
//! [`Chaos::inject`](crate::Chaos::inject)). A rule whose point and target no pair
//! answers can never fire here: the admin API warns of it, and `chaosctl` says which
//! targets the point has instead.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::rules::Rule;

/// Pairs kept at most: a client that calls many hosts by name does not grow the list
/// without end. Pairs past it are counted, not kept.
pub(crate) const MAX_KNOWN: usize = 1024;

/// A point and a target this process has: see [`Chaos::known_targets`](crate::Chaos::known_targets).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub struct KnownTarget {
    /// The point: `server`, `client`, `sql`, or a name given to `Chaos::inject`.
    pub point: String,
    /// The target (empty: a layer given no target name).
    pub target: String,
}

/// A rule that cannot fire in this process: no adapter here has its point and target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TargetWarning {
    /// The rule's id.
    pub rule: String,
    /// Its point.
    pub point: String,
    /// Its target, if it names one.
    pub target: Option<String>,
    /// The targets this process has seen at that point (empty: the point itself is
    /// unknown here).
    pub seen: Vec<String>,
}

impl fmt::Display for TargetWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(t) => write!(
                f,
                "rule `{}`: this instance has no `{}` point with target `{t}`",
                self.rule, self.point
            )?,
            None => write!(
                f,
                "rule `{}`: this instance has no `{}` point",
                self.rule, self.point
            )?,
        }
        if self.seen.is_empty() {
            write!(f, " (no adapter here uses point `{}`)", self.point)
        } else {
            write!(
                f,
                "; targets this point has seen: {}",
                self.seen
                    .iter()
                    .map(|t| if t.is_empty() { "(none)" } else { t })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// The pairs: read without a lock, added to under one.
#[derive(Default)]
pub(crate) struct Known {
    all: ArcSwap<Vec<(Box<str>, Box<str>)>>,
    writer: Mutex<()>,
    /// Set once a pair could not be kept: from then on nothing is looked up or added.
    full: AtomicBool,
}

impl Known {
    /// Notes `point` and `target`: after the first time, one load and a scan, no lock and
    /// no allocation; once the list is full, one relaxed load (a client calling ever new
    /// hosts takes no lock per call).
    #[inline]
    pub(crate) fn note(&self, point: &str, target: &str) {
        if !self.full.load(Ordering::Relaxed) && !self.has(point, target) {
            self.add(point, target);
        }
    }

    fn has(&self, point: &str, target: &str) -> bool {
        self.all
            .load()
            .iter()
            .any(|(p, t)| &**p == point && &**t == target)
    }

    #[cold]
    #[inline(never)]
    fn add(&self, point: &str, target: &str) {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.has(point, target) {
            return;
        }
        let cur = self.all.load();
        if cur.len() >= MAX_KNOWN {
            self.full.store(true, Ordering::Relaxed);
            return;
        }
        let mut next = Vec::clone(&cur);
        next.push((point.into(), target.into()));
        self.all.store(next.into());
    }

    /// Every pair, sorted.
    pub(crate) fn all(&self) -> Vec<KnownTarget> {
        let mut v: Vec<KnownTarget> = self
            .all
            .load()
            .iter()
            .map(|(p, t)| KnownTarget {
                point: p.to_string(),
                target: t.to_string(),
            })
            .collect();
        v.sort();
        v
    }

    /// Whether pairs were seen past [`MAX_KNOWN`] and not kept (a warning would then be
    /// a guess, so none is given).
    pub(crate) fn full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// A warning for each rule no pair answers.
    pub(crate) fn warnings<'a>(
        &self,
        rules: impl IntoIterator<Item = &'a Rule>,
    ) -> Vec<TargetWarning> {
        if self.full() {
            return Vec::new();
        }
        let all = self.all.load();
        rules
            .into_iter()
            .filter(|r| {
                !all.iter().any(|(p, t)| {
                    **p == *r.point && r.target.as_deref().is_none_or(|want| want == &**t)
                })
            })
            .map(|r| {
                let mut seen: Vec<String> = all
                    .iter()
                    .filter(|(p, _)| **p == *r.point)
                    .map(|(_, t)| t.to_string())
                    .collect();
                seen.sort();
                TargetWarning {
                    rule: r.id.clone(),
                    point: r.point.clone(),
                    target: r.target.clone(),
                    seen,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Abort, Fault};

    fn rule(id: &str, point: &str, target: Option<&str>) -> Rule {
        let r = Rule::new(id, point, Fault::Abort(Abort::http(503)));
        match target {
            Some(t) => r.with_target(t),
            None => r,
        }
    }

    #[test]
    fn a_rule_no_pair_answers_is_named_with_the_points_targets() {
        let k = Known::default();
        k.note("client", "backend");
        k.note("client", "payments");
        k.note("client", "backend");
        k.note("server", "");
        assert_eq!(k.all().len(), 3);
        let rules = [
            rule("typo", "client", Some("backnd")),
            rule("fine", "client", Some("payments")),
            rule("any", "client", None),
            rule("server", "server", None),
            rule("named-server", "server", Some("checkout")),
            rule("queue", "queue.publish", None),
        ];
        let w = k.warnings(&rules);
        let named: Vec<_> = w.iter().map(|w| w.rule.as_str()).collect();
        assert_eq!(named, ["typo", "named-server", "queue"]);
        assert_eq!(
            w[0].to_string(),
            "rule `typo`: this instance has no `client` point with target `backnd`; \
             targets this point has seen: backend, payments"
        );
        assert_eq!(
            w[1].to_string(),
            "rule `named-server`: this instance has no `server` point with target `checkout`; \
             targets this point has seen: (none)"
        );
        assert!(
            w[2].to_string()
                .ends_with("(no adapter here uses point `queue.publish`)")
        );
    }

    #[test]
    fn the_list_is_bounded_and_then_warns_of_nothing() {
        let k = Known::default();
        for i in 0..MAX_KNOWN + 5 {
            k.note("client", &format!("host-{i}"));
        }
        assert_eq!(k.all().len(), MAX_KNOWN);
        assert!(k.full());
        assert!(
            k.warnings(&[rule("x", "client", Some("nowhere"))])
                .is_empty()
        );
    }
}
