//! The engine handle: the rules in force behind an `ArcSwap`, the kill switch, the
//! engine's counters, its events and the steady state of every point.
//!
//! Every `impl Chaos` block is here, one file per concern: building ([`Builder`]), the
//! rules in force ([`compiled`], `control`), deciding (`decide`), observing (`observe`),
//! outbound calls and the generic injection point (`outbound`), what the guards decide (`stops`), reading a
//! request's context (`context`), files (`files`), the snapshot, and the test hooks.
//! Its state is private to this module; the rest of the crate reaches it through the
//! methods below.

mod builder;
pub(crate) mod compiled;
mod context;
mod control;
mod decide;
mod events;
mod files;
mod observe;
mod outbound;
pub mod reload;
mod snapshot;
mod stops;
#[cfg(feature = "test-util")]
mod testing;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use self::builder::Builder;
use self::compiled::{Compiled, Removed};
pub use self::events::Event;
pub use self::snapshot::{
    AbortCount, Budget, EngineStats, ReasonCount, RuleCounters, RuleSnapshot, RuleStatus, Snapshot,
};
#[cfg(feature = "test-util")]
pub use self::testing::{HopRecording, RuleGuard};
use crate::context::inbound::HeaderCounters;
use crate::context::signature::SigningKeys;
use crate::decision::{Decider, RngSource};
use crate::kill::KillSwitch;
use crate::known::{Known, KnownTarget, TargetWarning};
use crate::outcome::{Registry, ServiceGuard, SteadyState};
use crate::rate_limit::RateLimited;
use crate::rules::Rule;
use crate::rules::RulesError;
use crate::sync::{ArcSwap, Loaded};

/// Generations of rules: every store of rules into any engine takes the next.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A generation never taken before.
pub(crate) fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

#[cfg(not(chaos_loom))]
thread_local! {
    /// The rules this thread last read with [`Chaos::with_rules`], and their generation.
    static HELD_RULES: std::cell::RefCell<Option<(u64, Arc<Compiled>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The chaos engine: rules, kill switch, decisions. Cheap to clone; every clone is the same
/// engine.
///
/// Readers never block: rules live behind an [`ArcSwap`] (and a thread keeps the set it
/// last decided with while no new one is stored, so a decision reads them with a plain
/// load), and an engine with no rules and no way to accept directives answers every
/// decision after one relaxed atomic load.
///
/// ```
/// use chaos_core::{Chaos, Decision, Point, RequestView};
/// use chaos_core::rules::{Format, RuleSet};
///
/// let chaos = Chaos::new();
/// chaos.replace(RuleSet::parse(Format::Yaml, r#"
/// rules:
///   - id: orders-503
///     point: server
///     match: { path: /orders/* }
///     fault: { abort: 503 }
/// "#)?)?;
///
/// let view = RequestView::new(Point::Server, "").path("/orders/7");
/// match chaos.decide(&view) {
///     Decision::Inject(i) => assert_eq!(i.rule_id(), "orders-503"),
///     Decision::Pass => unreachable!(),
/// }
/// # Ok::<(), chaos_core::rules::RulesError>(())
/// ```
#[derive(Clone)]
pub struct Chaos {
    shared: Arc<Shared>,
}

impl fmt::Debug for Chaos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("version", &self.version())
            .field("rules", &self.compiled().rules.len())
            .field("killed", &self.is_killed())
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// "Anything to do?": not killed, and rules loaded or directives possible.
    armed: AtomicBool,
    /// Built: the kill switch turning on from now on is a flip.
    built: AtomicBool,
    kill: Arc<KillSwitch>,
    runtime_killed: AtomicBool,
    forced_off: bool,
    compiled: ArcSwap<Compiled>,
    /// The number of the rules in `compiled`, from [`GENERATIONS`]: stored after them.
    generation: AtomicU64,
    writer: Mutex<()>,
    version: AtomicU64,
    keys: Option<SigningKeys>,
    rng: RngSource,
    global_active: crate::sync::Arc<crate::sync::atomic::AtomicU32>,
    events: events::Events,
    stats: Stats,
    warn_headers: RateLimited,
    warn_reload: RateLimited,
    /// The watched file's last reload: loaded or refused, and when.
    last_reload: Mutex<Option<reload::Reload>>,
    steady: Registry,
    known: Known,
    service: ServiceGuard,
    removed: Removed,
    /// What lives as long as the engine (the `CHAOS_RULES` file watch).
    kept: Mutex<Vec<Box<dyn Send>>>,
    #[cfg(feature = "otel")]
    metrics: crate::otel::Metrics,
    #[cfg(feature = "test-util")]
    journal: crate::journal::Journal,
    #[cfg(feature = "test-util")]
    pauses: Mutex<Vec<(Box<str>, crate::pause::PauseGate)>>,
    #[cfg(feature = "test-util")]
    has_pauses: AtomicBool,
    #[cfg(feature = "test-util")]
    hops: crate::hops::Recorders,
}

#[derive(Default)]
struct Stats {
    headers: HeaderCounters,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    injected: AtomicU64,
    /// Rules stopped, by rule and reason, for the life of the process (a rule removed
    /// keeps its count). Written only when a rule stops.
    aborts: Mutex<std::collections::BTreeMap<(Box<str>, &'static str), u64>>,
}

impl Shared {
    fn new(
        keys: Option<SigningKeys>,
        seed: Option<u64>,
        kill: bool,
        forced_off: bool,
        #[cfg(feature = "otel")] metrics: crate::otel::Metrics,
    ) -> Shared {
        Shared {
            armed: AtomicBool::new(false),
            built: AtomicBool::new(false),
            kill: KillSwitch::new(),
            runtime_killed: AtomicBool::new(kill),
            forced_off,
            compiled: ArcSwap::from_pointee(Compiled::empty()),
            generation: AtomicU64::new(next_generation()),
            writer: Mutex::new(()),
            version: AtomicU64::new(0),
            keys,
            rng: RngSource::new(seed),
            global_active: crate::sync::Arc::new(crate::sync::atomic::AtomicU32::new(0)),
            events: events::Events::new(),
            stats: Stats::default(),
            warn_headers: RateLimited::new(Duration::from_secs(10)),
            warn_reload: RateLimited::new(Duration::from_secs(10)),
            last_reload: Mutex::new(None),
            steady: Registry::default(),
            known: Known::default(),
            service: ServiceGuard::new(),
            removed: Removed::default(),
            kept: Mutex::new(Vec::new()),
            #[cfg(feature = "otel")]
            metrics,
            #[cfg(feature = "test-util")]
            journal: crate::journal::Journal::default(),
            #[cfg(feature = "test-util")]
            pauses: Mutex::new(Vec::new()),
            #[cfg(feature = "test-util")]
            has_pauses: AtomicBool::new(false),
            #[cfg(feature = "test-util")]
            hops: crate::hops::Recorders::default(),
        }
    }
}

/// An engine handle that does not keep the engine alive (for the file watcher).
#[derive(Clone)]
pub(crate) struct WeakChaos(Weak<Shared>);

impl WeakChaos {
    pub(crate) fn upgrade(&self) -> Option<Chaos> {
        self.0.upgrade().map(|shared| Chaos { shared })
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos::new()
    }
}

impl Chaos {
    /// An engine with no rules (every decision passes until rules are loaded).
    pub fn new() -> Chaos {
        Builder::default().build().expect("no rules to refuse")
    }

    /// Starts building an engine.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// An engine with no rules whose random draws are deterministic: the same seed and the
    /// same order of decisions give the same decisions (for tests).
    ///
    /// ```
    /// use chaos_core::{Chaos, Point, RequestView};
    /// use chaos_core::rules::{Abort, Fault, Rate, Rule};
    ///
    /// let run = || {
    ///     let chaos = Chaos::from_seed(42);
    ///     let rule = Rule::new("half", "server", Fault::Abort(Abort::http(503)));
    ///     chaos.add_rule(rule.with_rate(Rate::new(0.5).unwrap())).unwrap();
    ///     let view = RequestView::new(Point::Server, "");
    ///     (0..32).map(|_| chaos.decide(&view).is_inject()).collect::<Vec<_>>()
    /// };
    /// assert_eq!(run(), run());
    /// ```
    pub fn from_seed(seed: u64) -> Chaos {
        Builder::default()
            .seed(seed)
            .build()
            .expect("no rules to refuse")
    }

    // ---- the hot path -----------------------------------------------------------------

    /// Whether a decision could inject anything at all. One relaxed atomic load.
    #[inline]
    pub fn is_armed(&self) -> bool {
        self.shared.armed.load(Ordering::Relaxed)
    }

    /// The steady state recorded at `point` for `target`, made on first use; every adapter
    /// that records there shares it. See [`steady`](crate::outcome::steady).
    pub fn steady_state(&self, point: &str, target: &str) -> Arc<SteadyState> {
        self.shared.steady.get(point, target)
    }

    /// Times one organic request in `one_in` at every point, instead of the adaptive
    /// sample (0: adapt again). For benchmarks that must count the same work on every
    /// run; not part of the API.
    #[doc(hidden)]
    pub fn pin_organic_sample(&self, one_in: u32) {
        self.shared.steady.pin_sample(one_in);
    }

    /// Every point and target that has recorded (or been asked for) a steady state.
    pub fn steady_states(&self) -> Vec<Arc<SteadyState>> {
        self.shared.steady.all()
    }

    /// Declares that this process has `point` with `target`: a rule for it can fire here.
    /// Every adapter of this workspace declares its point and target when it is built, and
    /// notes a target that comes with each call (a reqwest host, [`Chaos::inject`]) the
    /// first time it sees it, whether or not any rule is loaded. An adapter of your own
    /// does the same. After the first time for a pair, this is one load and a scan: no
    /// lock, no allocation.
    #[inline]
    pub fn declare(&self, point: &str, target: &str) {
        self.shared.known.note(point, target);
    }

    /// The points and targets this process has (see [`declare`](Chaos::declare)), sorted.
    /// At most 1024 are kept.
    pub fn known_targets(&self) -> Vec<KnownTarget> {
        self.shared.known.all()
    }

    /// A warning for each of `rules` whose point and target this process has never seen,
    /// so it cannot fire here, with the targets its point has seen instead. The admin API
    /// answers rule changes with these. None when more pairs were seen than are kept.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use chaos_core::rules::{Abort, Fault, Rule};
    ///
    /// let chaos = Chaos::new();
    /// chaos.declare("client", "backend");
    /// let typo = Rule::new("backend-down", "client", Fault::Abort(Abort::http(503))).with_target("backnd");
    /// let w = chaos.target_warnings(&[typo]);
    /// assert_eq!(
    ///     w[0].to_string(),
    ///     "rule `backend-down`: this instance has no `client` point with target `backnd`; \
    ///      targets this point has seen: backend"
    /// );
    /// ```
    pub fn target_warnings<'a>(
        &self,
        rules: impl IntoIterator<Item = &'a Rule>,
    ) -> Vec<TargetWarning> {
        self.shared.known.warnings(rules)
    }

    // ---- for the rest of the crate -------------------------------------------------

    /// The rules in force.
    pub(crate) fn compiled(&self) -> Loaded<Arc<Compiled>> {
        self.shared.compiled.load()
    }

    /// Runs `f` with the rules in force, as a request's decision and context read them.
    ///
    /// A thread keeps the last rules it read this way (one set, of whichever engine) with
    /// their generation, and reads them again while the engine's generation is the same:
    /// a plain load and a comparison, where a load from the swap is two read-modify-writes
    /// on a shared slot. Generations are never reused, so another engine's rules, or an
    /// engine's earlier ones, are never taken for these. A store of new rules takes its
    /// generation after the rules are in the swap: once `replace` returns, every read
    /// begun after it sees the new rules (a thread holding the old ones releases them at
    /// its next read of any engine's rules).
    #[inline]
    pub(crate) fn with_rules<R>(&self, f: impl FnOnce(&Compiled) -> R) -> R {
        #[cfg(not(chaos_loom))]
        {
            let generation = self.shared.generation.load(Ordering::Acquire);
            let mut f = Some(f);
            let hit = HELD_RULES.try_with(|held| {
                let held = held.try_borrow().ok()?;
                let (g, rules) = held.as_ref()?;
                if *g != generation {
                    return None;
                }
                f.take().map(|f| f(rules))
            });
            if let Ok(Some(out)) = hit {
                return out;
            }
            let f = f.take().expect("not called yet");
            self.with_rules_loaded(generation, f)
        }
        #[cfg(chaos_loom)]
        f(&self.compiled())
    }

    /// [`with_rules`](Self::with_rules) when this thread holds other rules: loads them
    /// from the swap, and keeps them (unless a read on this thread is under way).
    #[cfg(not(chaos_loom))]
    #[cold]
    #[inline(never)]
    fn with_rules_loaded<R>(&self, generation: u64, f: impl FnOnce(&Compiled) -> R) -> R {
        let loaded = self.shared.compiled.load_full();
        let out = f(&loaded);
        let _ = HELD_RULES.try_with(|held| {
            if let Ok(mut held) = held.try_borrow_mut() {
                // The rules held before are released here, outside any read of them.
                let old = held.replace((generation, loaded));
                drop(held);
                drop(old);
            }
        });
        out
    }

    /// What a decision reads, with the rules given.
    pub(crate) fn decider<'a>(&'a self, compiled: &'a Compiled) -> Decider<'a> {
        Decider {
            set: &compiled.set,
            rules: &compiled.rules,
            index: &compiled.index,
            rng: &self.shared.rng,
            global: &self.shared.global_active,
        }
    }

    /// A rule stopped (`rule` is `*` for the kill switch turning on), under `reason`:
    /// `guard`, `service_guard`, `budget`, `manual` or `kill_switch`.
    #[cold]
    pub(crate) fn count_abort(&self, rule: &str, reason: &'static str) {
        *self
            .shared
            .stats
            .aborts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((rule.into(), reason))
            .or_default() += 1;
        #[cfg(feature = "otel")]
        self.metrics().abort(rule, reason);
    }

    /// Every count of [`count_abort`](Self::count_abort): rule, reason, count.
    pub(crate) fn abort_counts(&self) -> Vec<(String, &'static str, u64)> {
        self.shared
            .stats
            .aborts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((r, why), n)| (r.to_string(), *why, *n))
            .collect()
    }

    pub(crate) fn kill_switch(&self) -> &Arc<KillSwitch> {
        &self.shared.kill
    }

    pub(crate) fn events(&self) -> &events::Events {
        &self.shared.events
    }

    #[cfg(feature = "otel")]
    pub(crate) fn metrics(&self) -> &crate::otel::Metrics {
        &self.shared.metrics
    }

    pub(crate) fn service_guard(&self) -> &ServiceGuard {
        &self.shared.service
    }

    pub(crate) fn removed(&self) -> &Removed {
        &self.shared.removed
    }

    pub(crate) fn bump_version(&self) {
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn count_injected(&self) {
        self.shared.stats.injected.fetch_add(1, Ordering::Relaxed);
    }

    /// Records at the generic injection point, whose names come with each call.
    pub(crate) fn record_outcome(
        &self,
        point: &str,
        target: &str,
        start: Option<std::time::Instant>,
        error: bool,
        injected: bool,
    ) {
        self.shared
            .steady
            .record(point, target, start, error, injected);
    }

    pub(crate) fn downgrade(&self) -> WeakChaos {
        WeakChaos(Arc::downgrade(&self.shared))
    }

    /// Keeps `thing` alive as long as the engine.
    pub(crate) fn keep_alive(&self, thing: Box<dyn Send>) {
        self.shared
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thing);
    }

    /// Counts a reload of a watched file and says so: logged (every refusal that differs
    /// from the last reload's; only the same one again is rate-limited), kept as
    /// [`Chaos::last_reload`], and on failure an event.
    pub(crate) fn note_reload(&self, path: &str, result: &Result<u64, RulesError>) {
        let s = &self.shared;
        let last = || s.last_reload.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match result {
            Ok(version) => {
                s.stats.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "chaos", path, version, "rules loaded");
                reload::ReloadOutcome::Loaded { version: *version }
            }
            Err(e) => {
                s.stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                let again = matches!(
                    last().as_ref().map(|r| &r.outcome),
                    Some(reload::ReloadOutcome::Refused { error }) if *error == msg
                );
                // A refusal unlike the last reload's is always logged (and starts the
                // limiter's interval); the same one again at most once an interval.
                let held = if again {
                    s.warn_reload.allow()
                } else {
                    Some(s.warn_reload.restart())
                };
                if let Some(held) = held {
                    let in_force = self.rules_in_force();
                    tracing::warn!(target: "chaos", path, error = %msg, suppressed = held, "rules file refused; {in_force}");
                }
                self.events()
                    .emit(Event::ReloadFailed { error: msg.clone() });
                reload::ReloadOutcome::Refused { error: msg }
            }
        };
        *last() = Some(reload::Reload {
            source: path.to_owned(),
            at: crate::rules::Timestamp(std::time::SystemTime::now()),
            outcome,
        });
    }

    /// What stays in force when a file is refused, in words for the log.
    fn rules_in_force(&self) -> String {
        let compiled = self.compiled();
        match compiled.set.rules.len() {
            0 => "no rules in force".to_owned(),
            n => format!(
                "the rules in force stay ({n} rule{}, version {})",
                if n == 1 { "" } else { "s" },
                self.version()
            ),
        }
    }

    /// The watched file's last reload (`CHAOS_RULES`, [`Chaos::watch_file`]): loaded or
    /// refused, the error, when. `None` before a file was first read.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use chaos_core::reload::ReloadOutcome;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rules.yaml");
    /// std::fs::write(&path, "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 150 }\n")?;
    ///
    /// let chaos = Chaos::new();
    /// let _watch = chaos.watch_file(&path)?;
    /// let last = chaos.last_reload().expect("read once already");
    /// match &last.outcome {
    ///     ReloadOutcome::Refused { error } => assert!(error.contains("write `25%` or `0.25`"), "{error}"),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(chaos.rules().rules.is_empty(), "nothing loaded: no rules in force");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_reload(&self) -> Option<reload::Reload> {
        self.shared
            .last_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Chaos>();
        check::<crate::Injection>();
        check::<Snapshot>();
    }

    /// A thread keeps the rules it last decided with: it never decides one engine's
    /// request with another engine's rules, nor with rules a reload on another thread
    /// replaced before the decision began.
    #[test]
    fn a_thread_decides_with_the_rules_in_force_of_the_engine_asked() {
        use crate::rules::{DropKind, Fault};
        use crate::{Point, RequestView};
        let engine = |target: &str| {
            let chaos = Chaos::new();
            let mut r = Rule::new("r", "server", Fault::Drop(DropKind::Reset));
            r.target = Some(target.into());
            chaos.add_rule(r).unwrap();
            chaos
        };
        let (a, b) = (engine("a"), engine("b"));
        let injects = |chaos: &Chaos, target: &str| {
            chaos
                .decide(&RequestView::new(Point::Server, target))
                .is_inject()
        };
        for _ in 0..2 {
            assert!(injects(&b, "b") && !injects(&b, "a"));
            assert!(injects(&a, "a") && !injects(&a, "b"));
        }
        // Replaced on another thread: this one, holding `a`'s old rules, sees the new.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut r = Rule::new("r2", "server", Fault::Drop(DropKind::Reset));
                r.target = Some("c".into());
                a.add_rule(r).unwrap();
                a.remove_rule("r").unwrap();
            });
        });
        assert!(!injects(&a, "a"), "decided with rules a reload replaced");
        assert!(injects(&a, "c") && injects(&b, "b"));
    }
}
