//! Rules compiled for matching: grouped by point, target and scenario so a request only
//! looks at rules that could match it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderName, Method};
use tokio::time::Instant;

use crate::ChaosContext;
use crate::request::{Point, RequestView};
use crate::rules::{DEFAULT_TTL, Fault, HeaderMatch, Mode, Pattern, Rate, Rule, RuleSet, Step};

/// How many scenario tags of one request select scenario-scoped rules; further tags are
/// still carried and forwarded.
pub(crate) const MAX_SCENARIOS: usize = 8;
/// Scopes tracked per rule; past this the rule-wide counters are used.
const MAX_SCOPES: usize = 4096;
/// Header names indexed per group; rules keyed on further names are scanned plainly.
const MAX_HEADER_KEYS: usize = 4;
const MAX_LISTS: usize = 2 * (2 + MAX_SCENARIOS + MAX_HEADER_KEYS);

pub(crate) struct Compiled {
    pub(crate) set: RuleSet,
    pub(crate) rules: Vec<CompiledRule>,
    index: Index,
}

#[derive(Default)]
struct Index {
    server: TargetIndex,
    client: TargetIndex,
    sql: TargetIndex,
    named: Keyed<TargetIndex>,
}

#[derive(Default)]
struct TargetIndex {
    any: Group,
    named: Keyed<Group>,
}

/// The rules of one point and target, split so a request only visits those that could
/// match it: by scenario tag, else by the first path segment the rule pins, else by the
/// value of a header it must have exactly, else plain. A request looks each indexed header
/// name up once, however many rules use it.
#[derive(Default)]
struct Group {
    plain: Vec<u32>,
    by_scenario: Keyed<Vec<u32>>,
    by_segment: Keyed<Vec<u32>>,
    by_header: Vec<(HeaderName, Keyed<Vec<u32>>)>,
}

/// A table keyed by name: a short list scanned in place (cheaper than hashing at a few
/// entries), a hash map past that, so lookups cost the same at 10 rules and at 10 000.
struct Keyed<T> {
    items: Vec<(Box<str>, T)>,
    map: HashMap<Box<str>, usize, OneShot>,
}

const SMALL: usize = 8;

/// Hashes a key with one call of xxh3 (the streaming `Hasher` form keeps a large state and
/// costs several times more on short names). Keys are the operator's; a request can only
/// look up, so a fixed seed cannot be used to build long collision chains.
#[derive(Clone, Copy, Default)]
struct OneShot;

struct OneShotHasher(u64);

impl std::hash::BuildHasher for OneShot {
    type Hasher = OneShotHasher;
    fn build_hasher(&self) -> OneShotHasher {
        OneShotHasher(0)
    }
}

impl std::hash::Hasher for OneShotHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = self.0.rotate_left(8) ^ u64::from(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            items: Vec::new(),
            map: HashMap::default(),
        }
    }
}

impl<T: Default> Keyed<T> {
    fn entry(&mut self, key: &str) -> &mut T {
        let i = match self.map.get(key) {
            Some(&i) => i,
            None => {
                self.items.push((key.into(), T::default()));
                self.map.insert(key.into(), self.items.len() - 1);
                self.items.len() - 1
            }
        };
        &mut self.items[i].1
    }
}

impl<T> Keyed<T> {
    #[inline]
    fn get(&self, key: &str) -> Option<&T> {
        if self.items.len() <= SMALL {
            self.items.iter().find(|(k, _)| **k == *key).map(|(_, v)| v)
        } else {
            self.map.get(key).map(|&i| &self.items[i].1)
        }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The first segment of a path: `/api/v1/x` -> `api`.
#[inline]
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or(rest)
}

/// The first path segment every request matching `p` must have, when the pattern pins it.
fn pinned_segment(p: &Pattern) -> Option<&str> {
    let lit = p.literal_prefix();
    if p.is_exact() {
        return lit.starts_with('/').then(|| first_segment(lit));
    }
    let rest = lit.strip_prefix('/')?;
    rest.find('/').map(|i| &rest[..i])
}

impl Index {
    fn point(&self, p: Point<'_>) -> Option<&TargetIndex> {
        match p {
            Point::Server => Some(&self.server),
            Point::Client => Some(&self.client),
            Point::Sql => Some(&self.sql),
            Point::Named(n) => self.named.get(n),
        }
    }

    fn point_mut(&mut self, name: &str) -> &mut TargetIndex {
        match name {
            "server" => &mut self.server,
            "client" => &mut self.client,
            "sql" => &mut self.sql,
            n => self.named.entry(n),
        }
    }
}

pub(crate) enum Sticky {
    Header(HeaderName),
    Scenario,
}

pub(crate) struct Schedule {
    steps: Box<[bool]>,
    cyclic: bool,
}

impl Schedule {
    fn from_rule(r: &Rule) -> Option<Schedule> {
        if let Some(seq) = &r.sequence {
            return Some(Schedule {
                steps: seq.iter().map(|s| *s == Step::Inject).collect(),
                cyclic: false,
            });
        }
        if let Some(n) = r.first {
            let mut steps = vec![true; n as usize];
            steps.push(false);
            return Some(Schedule {
                steps: steps.into(),
                cyclic: false,
            });
        }
        if let Some(n) = r.every {
            let mut steps = vec![false; n as usize];
            steps[n as usize - 1] = true;
            return Some(Schedule {
                steps: steps.into(),
                cyclic: true,
            });
        }
        None
    }

    /// Whether the `n`th (0-based) matching request of a scope injects.
    pub(crate) fn step(&self, n: u64) -> bool {
        let len = self.steps.len() as u64;
        let i = if self.cyclic { n % len } else { n.min(len - 1) };
        self.steps[i as usize]
    }
}

pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) fault: Arc<Fault>,
    methods: Vec<Method>,
    path: Option<Pattern>,
    headers: Vec<(HeaderName, HeaderMatch)>,
    pub(crate) scenario: Option<Box<str>>,
    test_traffic: Option<bool>,
    sql: Option<Pattern>,
    host: Option<Pattern>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) rate: Rate,
    pub(crate) sticky: Option<Sticky>,
    pub(crate) max_active: Option<u32>,
    pub(crate) max_hits: Option<u64>,
    pub(crate) mode: Mode,
    pub(crate) ramp: Option<(Vec<Rate>, Duration)>,
    pub(crate) state: Arc<RuleState>,
}

impl CompiledRule {
    /// Whether the request meets every condition except the scenario, which the index checked.
    #[inline]
    pub(crate) fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(t) = self.test_traffic
            && req.context.is_some_and(ChaosContext::is_test_traffic) != t
        {
            return false;
        }
        if !self.methods.is_empty() && !req.method.is_some_and(|m| self.methods.contains(m)) {
            return false;
        }
        if let Some(p) = &self.path
            && !req.path.is_some_and(|x| p.matches(x))
        {
            return false;
        }
        if let Some(p) = &self.sql
            && !req.sql.is_some_and(|x| p.matches(x))
        {
            return false;
        }
        if let Some(p) = &self.host
            && !req.host_name().is_some_and(|x| p.matches(x))
        {
            return false;
        }
        for (name, m) in &self.headers {
            let v = req.headers.and_then(|h| h.get(name));
            let ok = match m {
                HeaderMatch::Present => v.is_some(),
                HeaderMatch::Absent => v.is_none(),
                HeaderMatch::Exact(e) => v.is_some_and(|v| v.as_bytes() == e.as_bytes()),
                HeaderMatch::Glob(g) => v
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|s| g.matches(s)),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// The rate in force now (ramps step up with time since the rule was loaded).
    pub(crate) fn rate_now(&self, now: Instant) -> Rate {
        match &self.ramp {
            None => self.rate,
            Some((steps, every)) => {
                let elapsed = now.saturating_duration_since(self.state.loaded_at);
                let i = (elapsed.as_nanos() / every.as_nanos().max(1)) as usize;
                steps[i.min(steps.len() - 1)]
            }
        }
    }
}

/// Counters for one scope (a scenario tag, or the rule itself).
#[derive(Default)]
pub(crate) struct ScopeCounters {
    pub(crate) seen: AtomicU64,
    pub(crate) hits: AtomicU64,
}

/// A rule's runtime state; it survives reloads that leave the rule unchanged.
pub(crate) struct RuleState {
    pub(crate) loaded_at: Instant,
    pub(crate) expires_at: Instant,
    pub(crate) matched: AtomicU64,
    pub(crate) injected: AtomicU64,
    pub(crate) shadowed: AtomicU64,
    pub(crate) skipped_by_limit: AtomicU64,
    pub(crate) expired_hits: AtomicU64,
    pub(crate) active: AtomicU32,
    aborted: AtomicBool,
    abort_reason: Mutex<Option<String>>,
    pub(crate) rule_scope: ScopeCounters,
    scopes: Mutex<HashMap<Box<str>, Arc<ScopeCounters>>>,
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
    fn new(loaded_at: Instant, expires_at: Instant) -> RuleState {
        RuleState {
            loaded_at,
            expires_at,
            matched: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            shadowed: AtomicU64::new(0),
            skipped_by_limit: AtomicU64::new(0),
            expired_hits: AtomicU64::new(0),
            active: AtomicU32::new(0),
            aborted: AtomicBool::new(false),
            abort_reason: Mutex::new(None),
            rule_scope: ScopeCounters::default(),
            scopes: Mutex::new(HashMap::new()),
        }
    }

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

    pub(crate) fn abort(&self, reason: &str) -> bool {
        let mut r = self.abort_reason.lock().unwrap_or_else(|p| p.into_inner());
        if self.aborted.swap(true, Ordering::SeqCst) {
            return false;
        }
        *r = Some(reason.to_owned());
        true
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    pub(crate) fn abort_reason(&self) -> Option<String> {
        self.abort_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes a concurrency slot; always counts, refuses past `max`.
    pub(crate) fn try_acquire(&self, max: Option<u32>) -> bool {
        try_acquire(&self.active, max)
    }
}

pub(crate) fn try_acquire(counter: &AtomicU32, max: Option<u32>) -> bool {
    match max {
        None => {
            counter.fetch_add(1, Ordering::AcqRel);
            true
        }
        Some(max) => counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok(),
    }
}

impl Compiled {
    pub(crate) fn empty() -> Compiled {
        Compiled {
            set: RuleSet::default(),
            rules: Vec::new(),
            index: Index::default(),
        }
    }

    /// Compiles a validated set; rules unchanged since `prev` keep their state.
    pub(crate) fn new(set: RuleSet, prev: Option<&Compiled>) -> Compiled {
        let now = Instant::now();
        let wall = SystemTime::now();
        let default_ttl = set.defaults.ttl.map_or(DEFAULT_TTL, |d| d.0);
        let mut index = Index::default();
        let mut rules = Vec::with_capacity(set.rules.len());
        let previous: HashMap<&str, usize> = prev
            .map(|p| {
                p.set
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| (r.id.as_str(), j))
                    .collect()
            })
            .unwrap_or_default();
        for (i, r) in set.rules.iter().enumerate() {
            // An unchanged rule (same id, same definition, same time to live) keeps its
            // counters and expiry. A rule that takes its ttl from `defaults.ttl` changes when
            // that does, and starts afresh as if its own `ttl` had changed.
            let reused = prev.and_then(|p| {
                let j = *previous.get(r.id.as_str())?;
                let own_expiry = r.ttl.is_some() || r.expires_at.is_some();
                let prev_default = p.set.defaults.ttl.map_or(DEFAULT_TTL, |d| d.0);
                let same = p.set.rules[j] == *r && (own_expiry || prev_default == default_ttl);
                same.then(|| p.rules[j].state.clone())
            });
            let state = reused.unwrap_or_else(|| {
                let expires_at = match (r.ttl, r.expires_at) {
                    (Some(ttl), _) => now + ttl.0,
                    (None, Some(at)) => now + at.0.duration_since(wall).unwrap_or(Duration::ZERO),
                    (None, None) => now + default_ttl,
                };
                Arc::new(RuleState::new(now, expires_at))
            });
            let sticky = r.sticky_by.as_deref().map(|k| match k {
                "scenario" => Sticky::Scenario,
                h => Sticky::Header(HeaderName::try_from(h).expect("validated header name")),
            });
            rules.push(CompiledRule {
                id: r.id.as_str().into(),
                fault: Arc::new(r.fault.clone()),
                methods: r.matcher.method.clone(),
                path: r.matcher.path.clone(),
                headers: r
                    .matcher
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            HeaderName::try_from(k.as_str()).expect("validated header name"),
                            v.clone(),
                        )
                    })
                    .collect(),
                scenario: r.matcher.scenario.as_deref().map(Into::into),
                test_traffic: r.matcher.test_traffic,
                sql: r.matcher.sql.clone(),
                host: r.matcher.host.clone(),
                schedule: Schedule::from_rule(r),
                rate: r.rate,
                sticky,
                max_active: r.max_active,
                max_hits: r.max_hits,
                mode: r.mode,
                ramp: r.ramp.as_ref().map(|rp| (rp.steps.clone(), rp.every.0)),
                state,
            });
            let ti = index.point_mut(&r.point);
            let group = match &r.target {
                None => &mut ti.any,
                Some(t) => ti.named.entry(t),
            };
            let segment = r.matcher.path.as_ref().and_then(pinned_segment);
            let exact = rules[i].headers.iter().find_map(|(n, m)| match m {
                HeaderMatch::Exact(v) => Some((n.clone(), v.clone())),
                _ => None,
            });
            let list = match (&r.matcher.scenario, segment, exact) {
                (Some(s), _, _) => group.by_scenario.entry(s),
                (None, Some(seg), _) => group.by_segment.entry(seg),
                (None, None, Some((name, value))) => {
                    match group.by_header.iter().position(|(n, _)| *n == name) {
                        Some(k) => group.by_header[k].1.entry(&value),
                        None if group.by_header.len() < MAX_HEADER_KEYS => {
                            group.by_header.push((name, Keyed::default()));
                            let last = group.by_header.len() - 1;
                            group.by_header[last].1.entry(&value)
                        }
                        None => &mut group.plain,
                    }
                }
                (None, None, None) => &mut group.plain,
            };
            list.push(i as u32);
        }
        Compiled { set, rules, index }
    }

    /// Calls `f` with each rule that could match, in file order, until `f` returns `true`.
    /// Allocation-free: the candidate lists are merged on the stack.
    #[inline]
    pub(crate) fn for_candidates(
        &self,
        req: &RequestView<'_>,
        mut f: impl FnMut(&CompiledRule) -> bool,
    ) {
        let Some(ti) = self.index.point(req.point) else {
            return;
        };
        let mut lists: [&[u32]; MAX_LISTS] = [&[]; MAX_LISTS];
        let mut n = 0;
        let named = ti.named.get(req.target);
        let segment = req.path.map(first_segment);
        for g in [Some(&ti.any), named].into_iter().flatten() {
            if !g.plain.is_empty() {
                lists[n] = &g.plain;
                n += 1;
            }
            if let Some(l) = segment.and_then(|seg| g.by_segment.get(seg)) {
                lists[n] = l;
                n += 1;
            }
            for (name, by_value) in &g.by_header {
                if let Some(l) = req
                    .headers
                    .and_then(|h| h.get(name))
                    // Bytes, not `to_str`: an exact match compares bytes, UTF-8 included.
                    .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                    .and_then(|v| by_value.get(v))
                {
                    lists[n] = l;
                    n += 1;
                }
            }
            if g.by_scenario.is_empty() {
                continue;
            }
            if let Some(ctx) = req.context {
                for s in ctx.scenarios().iter().take(MAX_SCENARIOS) {
                    if let Some(l) = g.by_scenario.get(s) {
                        lists[n] = l;
                        n += 1;
                    }
                }
            }
        }
        let lists = &mut lists[..n];
        let mut last = u32::MAX;
        loop {
            let mut best: Option<usize> = None;
            for (i, l) in lists.iter().enumerate() {
                if let Some(&head) = l.first()
                    && best.is_none_or(|b| head < lists[b][0])
                {
                    best = Some(i);
                }
            }
            let Some(b) = best else { return };
            let idx = lists[b][0];
            lists[b] = &lists[b][1..];
            if idx == last {
                continue;
            }
            last = idx;
            let rule = &self.rules[idx as usize];
            if rule.matches(req) && f(rule) {
                return;
            }
        }
    }

    pub(crate) fn rule(&self, id: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}
