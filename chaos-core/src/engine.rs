//! The engine handle: rules behind an `ArcSwap`, the kill switch, decisions, events.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::HeaderMap;
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::compile::{Compiled, CompiledRule, Sticky, try_acquire};
use crate::context::signature::SigningKeys;
use crate::context::{ChaosContext, Trust, XChaos, parse_test_traffic};
use crate::log::RateLimited;
use crate::request::RequestView;
use crate::rules::{Dur, Fault, Mode, Rule, RuleSet, RulesError};
use crate::{Decision, Injection, headers};

/// The chaos engine: rules, kill switch, decisions. Cheap to clone; every clone is the same
/// engine.
///
/// Readers never block: rules live behind an [`ArcSwap`], and an engine with no rules and
/// no way to accept directives answers every decision after one relaxed atomic load.
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
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Chaos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("version", &self.version())
            .field("rules", &self.shared.compiled.load().rules.len())
            .field("killed", &self.is_killed())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    /// "Anything to do?": not killed, and rules loaded or directives possible.
    armed: AtomicBool,
    pub(crate) killed: AtomicBool,
    runtime_killed: AtomicBool,
    forced_off: bool,
    pub(crate) kill_notify: Notify,
    compiled: ArcSwap<Compiled>,
    writer: Mutex<()>,
    version: AtomicU64,
    keys: Option<SigningKeys>,
    rng: RngSource,
    pub(crate) global_active: AtomicU32,
    events: broadcast::Sender<Event>,
    has_subscribers: AtomicBool,
    pub(crate) stats: Stats,
    warn_headers: RateLimited,
    pub(crate) warn_reload: RateLimited,
    pub(crate) watch: Mutex<Option<crate::reload::FileWatch>>,
    #[cfg(feature = "test-util")]
    pub(crate) journal: Mutex<std::collections::VecDeque<crate::testing::JournalEntry>>,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) header_rejected: AtomicU64,
    pub(crate) signature_rejected: AtomicU64,
    pub(crate) directives_refused: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) reload_failures: AtomicU64,
    pub(crate) injected: AtomicU64,
}

/// Where random draws come from.
enum RngSource {
    /// A fast per-thread generator (wyrand, from `fastrand`).
    Thread,
    /// A deterministic stream: the same seed and the same order of decisions give the same
    /// draws.
    Seeded { seed: u64, counter: AtomicU64 },
}

impl RngSource {
    #[inline]
    fn next(&self) -> u64 {
        match self {
            RngSource::Thread => fastrand::u64(..),
            RngSource::Seeded { seed, counter } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).u64(..)
            }
        }
    }
}

/// Something that happened in the engine, for [`Chaos::subscribe`].
///
/// ```
/// use chaos_core::{Chaos, Event};
/// use chaos_core::rules::{Abort, Fault, Rule};
///
/// let chaos = Chaos::new();
/// let mut events = chaos.subscribe();
/// chaos.add_rule(Rule::new("a", "server", Fault::Abort(Abort::http(503)))).unwrap();
/// chaos.kill();
/// assert!(matches!(events.try_recv(), Ok(Event::RulesChanged { rules: 1, .. })));
/// assert_eq!(events.try_recv().ok(), Some(Event::Killed));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The rules were replaced, added to or removed from.
    RulesChanged {
        /// The new version.
        version: u64,
        /// How many rules are loaded now.
        rules: usize,
    },
    /// A fault was injected (or, in shadow mode, would have been).
    Injected {
        /// The rule id, or `x-chaos` for a directive.
        rule: String,
        /// The fault, e.g. `delay 300ms`.
        fault: String,
        /// The point.
        point: String,
        /// The target.
        target: String,
        /// The scope (scenario tag) the injection was counted in.
        scope: Option<String>,
        /// `true` when the rule is in shadow mode and nothing was injected.
        shadow: bool,
    },
    /// A rule was aborted (by its guard, or by hand).
    RuleAborted {
        /// The rule id.
        rule: String,
        /// Why.
        reason: String,
    },
    /// The kill switch was flipped on.
    Killed,
    /// The kill switch was flipped off.
    Resumed,
    /// A rules file could not be loaded; the last good rules stay in force.
    ReloadFailed {
        /// The error, with its position.
        error: String,
    },
}

/// Builds a [`Chaos`] engine.
///
/// ```
/// use chaos_core::Chaos;
/// use chaos_core::context::signature::SigningKeys;
/// use chaos_core::rules::{Format, RuleSet};
///
/// let chaos = Chaos::builder()
///     .rules(RuleSet::parse(Format::Yaml, "rules: []")?)
///     .signing_keys(SigningKeys::new("a long random secret"))
///     .seed(7)
///     .build()?;
/// assert!(!chaos.is_killed());
/// # Ok::<(), chaos_core::rules::RulesError>(())
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct Builder {
    rules: Option<RuleSet>,
    keys: Option<SigningKeys>,
    seed: Option<u64>,
    kill: bool,
    forced_off: bool,
}

impl Builder {
    /// Starts with these rules (validated again at build).
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Accepts signed directives made with these keys.
    pub fn signing_keys(mut self, keys: SigningKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Makes every random draw deterministic: the same seed and the same order of decisions
    /// give the same decisions (for tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts with the kill switch on (it can be resumed).
    pub fn kill_switch(mut self, on: bool) -> Self {
        self.kill = on;
        self
    }

    /// Keeps the kill switch on for good: nothing is ever injected (`CHAOS_DISABLED=1`).
    pub fn disabled(mut self, off: bool) -> Self {
        self.forced_off = off;
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// The rules given do not validate.
    pub fn build(self) -> Result<Chaos, RulesError> {
        let (events, _) = broadcast::channel(1024);
        let chaos = Chaos {
            shared: Arc::new(Shared {
                armed: AtomicBool::new(false),
                killed: AtomicBool::new(false),
                runtime_killed: AtomicBool::new(self.kill),
                forced_off: self.forced_off,
                kill_notify: Notify::new(),
                compiled: ArcSwap::from_pointee(Compiled::empty()),
                writer: Mutex::new(()),
                version: AtomicU64::new(0),
                keys: self.keys,
                rng: match self.seed {
                    Some(seed) => RngSource::Seeded {
                        seed,
                        counter: AtomicU64::new(0),
                    },
                    None => RngSource::Thread,
                },
                global_active: AtomicU32::new(0),
                events,
                has_subscribers: AtomicBool::new(false),
                stats: Stats::default(),
                warn_headers: RateLimited::new(Duration::from_secs(10)),
                warn_reload: RateLimited::new(Duration::from_secs(10)),
                watch: Mutex::new(None),
                #[cfg(feature = "test-util")]
                journal: Mutex::new(std::collections::VecDeque::new()),
            }),
        };
        match self.rules {
            Some(r) => {
                chaos.replace(r)?;
            }
            None => chaos.refresh_flags(&chaos.shared.compiled.load()),
        }
        Ok(chaos)
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

    /// An engine configured from the environment:
    ///
    /// * `CHAOS_DISABLED=1` (or `true`): the kill switch is on for good;
    /// * `CHAOS_RULES=path`: rules are loaded from the file and the file is watched
    ///   (a bad or missing file is logged and the engine starts empty);
    /// * `CHAOS_SIGNING_KEY`, `CHAOS_SIGNING_KEY_PREVIOUS`: keys for signed directives.
    ///
    /// It never fails: chaos must not stop a service from starting.
    pub fn from_env() -> Chaos {
        let disabled = std::env::var("CHAOS_DISABLED")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let mut b = Builder::default().disabled(disabled);
        if let Some(k) = SigningKeys::from_env() {
            b = b.signing_keys(k);
        }
        let chaos = b.build().expect("no rules to refuse");
        if let Ok(path) = std::env::var("CHAOS_RULES") {
            match chaos.watch_file(&path) {
                Ok(w) => *chaos.shared.watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(w),
                Err(e) => {
                    tracing::error!(target: "chaos", path, error = %e, "cannot watch CHAOS_RULES")
                }
            }
        }
        chaos
    }

    // ---- the hot path -----------------------------------------------------------------

    /// Whether a decision could inject anything at all. One relaxed atomic load.
    #[inline]
    pub fn is_armed(&self) -> bool {
        self.shared.armed.load(Ordering::Relaxed)
    }

    /// Decides what to do with a request.
    ///
    /// With no rules and no directives possible this is one relaxed atomic load. With rules,
    /// a request only looks at rules of its point and target (and of its scenario tags).
    /// The path that matches nothing allocates nothing, takes no lock and draws no random
    /// number.
    #[inline]
    pub fn decide(&self, req: &RequestView<'_>) -> Decision {
        if !self.shared.armed.load(Ordering::Relaxed) {
            return Decision::Pass;
        }
        self.decide_armed(req)
    }

    fn decide_armed(&self, req: &RequestView<'_>) -> Decision {
        let compiled = self.shared.compiled.load();
        if let Some(ctx) = req.context
            && ctx.is_trusted()
            && !ctx.directives().is_empty()
            && let Some(inj) = self.decide_directives(req, ctx, &compiled)
        {
            return Decision::Inject(inj);
        }
        if compiled.rules.is_empty() {
            return Decision::Pass;
        }
        let mut out = None;
        compiled.for_candidates(req, |rule| {
            out = self.evaluate(rule, req, &compiled);
            out.is_some()
        });
        match out {
            Some(inj) => Decision::Inject(inj),
            None => Decision::Pass,
        }
    }

    #[cold]
    fn decide_directives(
        &self,
        req: &RequestView<'_>,
        ctx: &ChaosContext,
        compiled: &Compiled,
    ) -> Option<Injection> {
        let point = req.point.name();
        for d in ctx.active_directives() {
            if d.point_name() != point || d.target.as_deref().is_some_and(|t| t != req.target) {
                continue;
            }
            if !d.rate.admits(self.shared.rng.next()) {
                continue;
            }
            if !try_acquire(&self.shared.global_active, compiled.set.max_active) {
                continue;
            }
            let fault = Arc::new(d.fault.clone());
            let inj = self.make_injection(
                compiled,
                "x-chaos".into(),
                fault,
                req,
                ctx.scenarios().first().map(|s| s.as_str()),
                None,
            );
            self.record(&inj, false);
            return Some(inj);
        }
        None
    }

    /// Evaluates one matching rule; `Some` when it injects.
    #[cold]
    fn evaluate(
        &self,
        rule: &CompiledRule,
        req: &RequestView<'_>,
        compiled: &Compiled,
    ) -> Option<Injection> {
        let st = &rule.state;
        st.matched.fetch_add(1, Ordering::Relaxed);
        if st.is_aborted() {
            return None;
        }
        let now = Instant::now();
        if now >= st.expires_at {
            st.expired_hits.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let scope_name: Option<&str> = rule.scenario.as_deref().or_else(|| {
            req.context
                .and_then(|c| c.scenarios().first().map(String::as_str))
        });
        let scope =
            (rule.schedule.is_some() || rule.max_hits.is_some()).then(|| st.scope(scope_name));
        if let (Some(max), Some(sc)) = (rule.max_hits, &scope)
            && sc.hits.load(Ordering::Acquire) >= max
        {
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let (Some(sched), Some(sc)) = (&rule.schedule, &scope)
            && !sched.step(sc.seen.fetch_add(1, Ordering::AcqRel))
        {
            return None;
        }
        let rate = rule.rate_now(now);
        if rate.fraction() < 1.0 || rule.sticky.is_some() {
            // Sticky: the key's hash is the draw, so a key always gets the same decision and
            // a cohort at 1% is inside the cohort at 5%. A request without the key is never
            // in the cohort.
            let draw = match &rule.sticky {
                Some(Sticky::Header(h)) => match req.headers.and_then(|m| m.get(h)) {
                    Some(v) => xxhash_rust::xxh3::xxh3_64(v.as_bytes()),
                    None => return None,
                },
                Some(Sticky::Scenario) => match scope_name {
                    Some(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
                    None => return None,
                },
                None => self.shared.rng.next(),
            };
            if !rate.admits(draw) {
                return None;
            }
        }
        if rule.mode == Mode::Shadow {
            st.shadowed.fetch_add(1, Ordering::Relaxed);
            let inj = self.make_injection(
                compiled,
                rule.id.clone(),
                rule.fault.clone(),
                req,
                scope_name,
                None,
            );
            self.record(&inj, true);
            // Not injected: release without counting as active.
            inj.disarm();
            return None;
        }
        if !st.try_acquire(rule.max_active) {
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if !try_acquire(&self.shared.global_active, compiled.set.max_active) {
            st.active.fetch_sub(1, Ordering::AcqRel);
            st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let (Some(max), Some(sc)) = (rule.max_hits, &scope) {
            let took = sc
                .hits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok();
            if !took {
                st.active.fetch_sub(1, Ordering::AcqRel);
                self.shared.global_active.fetch_sub(1, Ordering::AcqRel);
                st.skipped_by_limit.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        st.injected.fetch_add(1, Ordering::Relaxed);
        let inj = self.make_injection(
            compiled,
            rule.id.clone(),
            rule.fault.clone(),
            req,
            scope_name,
            Some(st.clone()),
        );
        self.record(&inj, false);
        Some(inj)
    }

    fn make_injection(
        &self,
        compiled: &Compiled,
        rule: Arc<str>,
        fault: Arc<Fault>,
        req: &RequestView<'_>,
        scope: Option<&str>,
        state: Option<Arc<crate::compile::RuleState>>,
    ) -> Injection {
        let limits = &compiled.set.limits;
        let delay = match &*fault {
            Fault::Delay(d) => Some(d.sample(
                self.shared.rng.next(),
                self.shared.rng.next(),
                limits.max_delay.0,
            )),
            _ => None,
        };
        Injection {
            i: Box::new(crate::inject::Parts {
                shared: self.shared.clone(),
                rule,
                fault,
                point: req.point.name().into(),
                target: req.target.into(),
                scope: scope.map(Into::into),
                delay,
                max_hang: limits.max_hang.0,
                state,
                armed: true,
            }),
        }
    }

    fn record(&self, inj: &Injection, shadow: bool) {
        if !shadow {
            self.shared.stats.injected.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(
            target: "chaos",
            rule = %inj.i.rule,
            fault = %inj.i.fault,
            point = %inj.i.point,
            target = %inj.i.target,
            scope = inj.i.scope.as_deref(),
            shadow,
            "{}",
            if shadow { "fault would be injected (shadow)" } else { "fault injected" },
        );
        if self.shared.has_subscribers.load(Ordering::Relaxed) {
            let _ = self.shared.events.send(Event::Injected {
                rule: inj.i.rule.to_string(),
                fault: inj.i.fault.to_string(),
                point: inj.i.point.to_string(),
                target: inj.i.target.to_string(),
                scope: inj.i.scope.as_deref().map(str::to_owned),
                shadow,
            });
        }
        #[cfg(feature = "test-util")]
        crate::testing::journal_push(&self.shared, inj, shadow);
    }

    // ---- context from headers ---------------------------------------------------------

    /// Builds the chaos context of an inbound request from its headers (`x-chaos`,
    /// `x-chaos-signature`, `x-test-traffic`), with this engine's limits and trust.
    ///
    /// `None` when the request carries none of them, or nothing usable. Bad items are
    /// ignored, counted and logged (rate-limited); they never fail the request. Directives
    /// are trusted when the rules set `allow_directives` or the signature checks out.
    pub fn context_from_headers(&self, headers: &HeaderMap) -> Option<ChaosContext> {
        let x = headers.get(&headers::X_CHAOS);
        let tt = headers.get(&headers::X_TEST_TRAFFIC);
        if x.is_none() && tt.is_none() {
            return None;
        }
        self.context_slow(headers, x, tt)
    }

    #[cold]
    fn context_slow(
        &self,
        headers: &HeaderMap,
        x: Option<&http::HeaderValue>,
        tt: Option<&http::HeaderValue>,
    ) -> Option<ChaosContext> {
        let compiled = self.shared.compiled.load();
        let test_traffic = match tt.map(|v| parse_test_traffic(v.as_bytes())) {
            None => false,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                self.reject_header(&e.to_string(), 1);
                false
            }
        };
        let mut header = XChaos::default();
        let mut trust = Trust::Untrusted;
        let mut hop = 0;
        if let Some(x) = x {
            let (parsed, errors) = XChaos::parse_lossy(x.as_bytes(), &compiled.set.limits);
            if let Some(first) = errors.first() {
                self.reject_header(&first.to_string(), errors.len() as u64);
            }
            header = parsed;
            if !header.directives.is_empty() {
                if compiled.set.allow_directives {
                    trust = Trust::Allowed;
                } else if let (Some(keys), Some(sig)) =
                    (&self.shared.keys, headers.get(&headers::X_CHAOS_SIGNATURE))
                {
                    match keys.verify(x.as_bytes(), sig.as_bytes(), SystemTime::now()) {
                        Ok(v) if errors.is_empty() => {
                            hop = v.hop;
                            trust = Trust::Signed {
                                value: x.clone(),
                                signature: SigningKeys::strip_hop(sig.to_str().unwrap_or_default()),
                            };
                        }
                        Ok(_) => self.refuse_directives("signed header has refused items"),
                        Err(e) => {
                            self.shared
                                .stats
                                .signature_rejected
                                .fetch_add(1, Ordering::Relaxed);
                            self.reject_header(&format!("x-chaos-signature: {e}"), 0);
                        }
                    }
                } else {
                    self.refuse_directives(
                        "directives are not allowed and the request is not signed",
                    );
                }
            }
        }
        if header.is_empty() && !test_traffic {
            return None;
        }
        Some(ChaosContext::new(header, test_traffic, trust, hop))
    }

    fn reject_header(&self, what: &str, n: u64) {
        self.shared
            .stats
            .header_rejected
            .fetch_add(n, Ordering::Relaxed);
        if let Some(held) = self.shared.warn_headers.allow() {
            tracing::warn!(target: "chaos", reason = what, suppressed = held, "ignored part of a chaos header");
        }
    }

    fn refuse_directives(&self, why: &'static str) {
        self.shared
            .stats
            .directives_refused
            .fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.shared.warn_headers.allow() {
            tracing::warn!(target: "chaos", reason = why, suppressed = held, "ignored x-chaos directives");
        }
    }

    // ---- control ----------------------------------------------------------------------

    /// Replaces all rules. Returns the new version.
    ///
    /// Rules that are unchanged keep their counters, sequences and expiry.
    ///
    /// # Errors
    ///
    /// The set does not validate; the rules in force stay.
    pub fn replace(&self, set: RuleSet) -> Result<u64, RulesError> {
        set.validate()?;
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.store(set))
    }

    /// Adds one rule at the end. Returns the new version.
    ///
    /// # Errors
    ///
    /// The rule does not validate or its id is taken.
    pub fn add_rule(&self, rule: Rule) -> Result<u64, RulesError> {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut set = self.shared.compiled.load().set.clone();
        set.rules.push(rule);
        set.validate()?;
        Ok(self.store(set))
    }

    /// Removes the rule with this id. Returns the new version.
    ///
    /// # Errors
    ///
    /// No rule has this id.
    pub fn remove_rule(&self, id: &str) -> Result<u64, RulesError> {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut set = self.shared.compiled.load().set.clone();
        let before = set.rules.len();
        set.rules.retain(|r| r.id != id);
        if set.rules.len() == before {
            return Err(RulesError::not_found(id));
        }
        Ok(self.store(set))
    }

    /// Stops a rule for good (until it is replaced by a changed rule), with a reason.
    ///
    /// # Errors
    ///
    /// No rule has this id.
    pub fn abort_rule(&self, id: &str, reason: &str) -> Result<(), RulesError> {
        let compiled = self.shared.compiled.load();
        let rule = compiled.rule(id).ok_or_else(|| RulesError::not_found(id))?;
        if rule.state.abort(reason) {
            self.shared.version.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(target: "chaos", rule = id, reason, "rule aborted");
            self.emit(Event::RuleAborted {
                rule: id.to_owned(),
                reason: reason.to_owned(),
            });
        }
        Ok(())
    }

    fn store(&self, set: RuleSet) -> u64 {
        let prev = self.shared.compiled.load_full();
        let compiled = Arc::new(Compiled::new(set, Some(&prev)));
        let n = compiled.rules.len();
        self.refresh_flags(&compiled);
        self.shared.compiled.store(compiled);
        let v = self.shared.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.emit(Event::RulesChanged {
            version: v,
            rules: n,
        });
        v
    }

    fn refresh_flags(&self, compiled: &Compiled) {
        let s = &self.shared;
        let was = s.killed.load(Ordering::SeqCst);
        let killed =
            s.forced_off || s.runtime_killed.load(Ordering::SeqCst) || compiled.set.kill_switch;
        s.killed.store(killed, Ordering::SeqCst);
        let anything =
            !compiled.rules.is_empty() || compiled.set.allow_directives || s.keys.is_some();
        s.armed.store(!killed && anything, Ordering::SeqCst);
        if killed && !was {
            s.kill_notify.notify_waiters();
            tracing::warn!(target: "chaos", "kill switch on: no new injections, in-flight delays released");
            self.emit(Event::Killed);
        } else if !killed && was {
            tracing::info!(target: "chaos", "kill switch off");
            self.emit(Event::Resumed);
        }
    }

    /// Flips the kill switch on: no new injection happens, and every in-flight delay, hang
    /// and pause returns at once.
    ///
    /// ```
    /// use chaos_core::{Chaos, Point, RequestView};
    /// use chaos_core::rules::{Abort, Fault, Rule};
    ///
    /// let chaos = Chaos::new();
    /// chaos.add_rule(Rule::new("all-503", "server", Fault::Abort(Abort::http(503)))).unwrap();
    /// let view = RequestView::new(Point::Server, "");
    /// assert!(chaos.decide(&view).is_inject());
    /// chaos.kill();
    /// assert!(!chaos.decide(&view).is_inject());
    /// chaos.resume();
    /// assert!(chaos.decide(&view).is_inject());
    /// ```
    pub fn kill(&self) {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.runtime_killed.store(true, Ordering::SeqCst);
        self.refresh_flags(&self.shared.compiled.load());
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Flips the kill switch off (unless the rules say `kill_switch: true` or the engine
    /// was built disabled).
    pub fn resume(&self) {
        let _w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.runtime_killed.store(false, Ordering::SeqCst);
        self.refresh_flags(&self.shared.compiled.load());
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the kill switch is on.
    pub fn is_killed(&self) -> bool {
        self.shared.killed.load(Ordering::SeqCst)
    }

    /// Resolves when the kill switch is on (at once if it already is). Adapters use it to
    /// cut their own waits short, as [`Injection::wait`] does.
    pub async fn killed(&self) {
        self.shared.killed().await;
    }

    /// The version of the engine's state: bumped by every change of rules, by the kill
    /// switch (both ways) and by aborting a rule.
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The rules in force.
    pub fn rules(&self) -> RuleSet {
        self.shared.compiled.load().set.clone()
    }

    /// Receives engine events. Subscribing costs nothing on the path that matches nothing;
    /// a slow receiver misses events (the channel keeps the last 1024) rather than slowing
    /// requests.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.has_subscribers.store(true, Ordering::Relaxed);
        self.shared.events.subscribe()
    }

    pub(crate) fn emit(&self, e: Event) {
        if self.shared.has_subscribers.load(Ordering::Relaxed) {
            let _ = self.shared.events.send(e);
        }
    }

    /// Rules, their state and counters, and the engine's counters, for the admin endpoint
    /// and for tests.
    pub fn snapshot(&self) -> Snapshot {
        let compiled = self.shared.compiled.load();
        let now = Instant::now();
        let killed = self.is_killed();
        let rules = compiled
            .set
            .rules
            .iter()
            .zip(&compiled.rules)
            .map(|(spec, c)| {
                let st = &c.state;
                let hits = st.rule_scope.hits.load(Ordering::Relaxed);
                let state = if killed {
                    RuleStatus::Killed
                } else if st.is_aborted() {
                    RuleStatus::Aborted
                } else if now >= st.expires_at {
                    RuleStatus::Expired
                } else if spec.max_hits.is_some_and(|m| hits >= m) {
                    RuleStatus::Retired
                } else {
                    RuleStatus::Active
                };
                RuleSnapshot {
                    rule: spec.clone(),
                    state,
                    abort_reason: st.abort_reason(),
                    expires_in: Dur(st.expires_at.saturating_duration_since(now)),
                    counters: RuleCounters {
                        matched: st.matched.load(Ordering::Relaxed),
                        injected: st.injected.load(Ordering::Relaxed),
                        shadowed: st.shadowed.load(Ordering::Relaxed),
                        skipped_by_limit: st.skipped_by_limit.load(Ordering::Relaxed),
                        expired: st.expired_hits.load(Ordering::Relaxed),
                        active: st.active.load(Ordering::Relaxed),
                        hits,
                    },
                }
            })
            .collect();
        let s = &self.shared.stats;
        Snapshot {
            version: self.version(),
            killed,
            allow_directives: compiled.set.allow_directives,
            rules,
            stats: EngineStats {
                injected: s.injected.load(Ordering::Relaxed),
                active: self.shared.global_active.load(Ordering::Relaxed),
                header_rejected: s.header_rejected.load(Ordering::Relaxed),
                signature_rejected: s.signature_rejected.load(Ordering::Relaxed),
                directives_refused: s.directives_refused.load(Ordering::Relaxed),
                reloads: s.reloads.load(Ordering::Relaxed),
                reload_failures: s.reload_failures.load(Ordering::Relaxed),
            },
        }
    }
}

/// The engine at one moment: see [`Chaos::snapshot`]. Serializes to the admin API's JSON.
///
/// ```
/// use chaos_core::{Chaos, Point, RequestView, RuleStatus};
/// use chaos_core::rules::{Abort, Fault, Rule};
///
/// let chaos = Chaos::new();
/// chaos.add_rule(Rule::new("a", "server", Fault::Abort(Abort::http(503))).with_max_hits(1)).unwrap();
/// let _ = chaos.decide(&RequestView::new(Point::Server, ""));
/// let snap = chaos.snapshot();
/// assert_eq!(snap.rules[0].counters.injected, 1);
/// assert_eq!(snap.rules[0].state, RuleStatus::Retired);
/// let json = serde_json::to_value(&snap).unwrap();
/// assert_eq!(json["rules"][0]["state"], "retired");
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The rules version.
    pub version: u64,
    /// Whether the kill switch is on.
    pub killed: bool,
    /// Whether unsigned directives are accepted.
    pub allow_directives: bool,
    /// Each rule, in order.
    pub rules: Vec<RuleSnapshot>,
    /// Engine-wide counters.
    pub stats: EngineStats,
}

/// One rule with its state and counters.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RuleSnapshot {
    /// The rule as loaded.
    pub rule: Rule,
    /// Its state.
    pub state: RuleStatus,
    /// Why it was aborted, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Time left before it expires.
    pub expires_in: Dur,
    /// Its counters.
    pub counters: RuleCounters,
}

/// The state of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RuleStatus {
    /// It may inject.
    Active,
    /// Its TTL has passed.
    Expired,
    /// It reached `max_hits` (in its rule-wide scope).
    Retired,
    /// The kill switch is on.
    Killed,
    /// Its guard fired, or it was aborted by hand.
    Aborted,
}

/// Counters of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuleCounters {
    /// Requests that met its conditions.
    pub matched: u64,
    /// Faults injected.
    pub injected: u64,
    /// Faults that would have been injected (shadow mode).
    pub shadowed: u64,
    /// Injections skipped by `max_active`, the global `max_active` or `max_hits`.
    pub skipped_by_limit: u64,
    /// Requests matched after the rule expired.
    pub expired: u64,
    /// Injections in flight.
    pub active: u32,
    /// Injections counted in the rule-wide scope (requests with no scenario tag).
    pub hits: u64,
}

/// Engine-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EngineStats {
    /// Faults injected, by rules and directives.
    pub injected: u64,
    /// Injections in flight.
    pub active: u32,
    /// Header items ignored as malformed or over a limit.
    pub header_rejected: u64,
    /// Signatures refused.
    pub signature_rejected: u64,
    /// Requests whose directives were ignored as untrusted.
    pub directives_refused: u64,
    /// Successful reloads from a watched file.
    pub reloads: u64,
    /// Reloads refused (bad file); the last good rules stayed.
    pub reload_failures: u64,
}

impl Injection {
    /// Marks a shadow decision as never active.
    fn disarm(mut self) {
        self.i.armed = false;
    }
}

impl Drop for Injection {
    fn drop(&mut self) {
        if !self.i.armed {
            return;
        }
        if let Some(st) = &self.i.state {
            st.active.fetch_sub(1, Ordering::AcqRel);
        }
        self.i.shared.global_active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// Waits for the kill switch, or returns at once if it is on.
    pub(crate) async fn killed(&self) {
        let n = self.kill_notify.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.killed.load(Ordering::SeqCst) {
            return;
        }
        n.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Chaos>();
        check::<Injection>();
        check::<Snapshot>();
    }
}
