//! Rules compiled for matching: grouped by point, target, scenario, path segment and
//! exact header value, so a request only looks at rules that could match it.

use std::collections::HashMap;

use http::{HeaderName, Method};

use crate::context::ChaosContext;
use crate::request::{Point, RequestView};
use crate::rules::{HeaderMatch, Pattern, Rule};

/// How many scenario tags of one request select scenario-scoped rules; further tags are
/// still carried and forwarded.
pub(crate) const MAX_SCENARIOS: usize = 8;
/// Header names indexed per group; rules keyed on further names are scanned plainly.
const MAX_HEADER_KEYS: usize = 4;
const MAX_LISTS: usize = 2 * (2 + MAX_SCENARIOS + MAX_HEADER_KEYS);
/// Lists a request usually meets at most (see `for_candidates`).
const FEW: usize = 4;

/// The conditions of every rule, and the lists that say which rules a request could meet.
#[derive(Default)]
pub(crate) struct RuleIndex {
    matchers: Vec<Matcher>,
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
    /// Bit `len % 64` set for each key's length: most names a request brings that no rule
    /// has are refused by their length, without hashing.
    lengths: u64,
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

#[inline]
fn length_bit(key: &str) -> u64 {
    1 << (key.len() % 64)
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            items: Vec::new(),
            map: HashMap::default(),
            lengths: 0,
        }
    }
}

impl<T: Default> Keyed<T> {
    fn entry(&mut self, key: &str) -> &mut T {
        let i = match self.map.get(key) {
            Some(&i) => i,
            None => {
                self.lengths |= length_bit(key);
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
        if self.lengths & length_bit(key) == 0 {
            return None;
        }
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
    // A byte loop: the segment is short, and a searcher's set-up costs more than it.
    match rest.bytes().position(|b| b == b'/') {
        Some(i) => &rest[..i],
        None => rest,
    }
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
    #[inline]
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

/// The conditions of one rule's `match`, compiled.
struct Matcher {
    methods: Vec<Method>,
    path: Option<Pattern>,
    headers: Vec<(HeaderName, HeaderMatch)>,
    test_traffic: Option<bool>,
    sql: Option<Pattern>,
    host: Option<Pattern>,
}

impl Matcher {
    fn new(r: &Rule) -> Matcher {
        Matcher {
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
            test_traffic: r.matcher.test_traffic,
            sql: r.matcher.sql.clone(),
            host: r.matcher.host.clone(),
        }
    }

    /// Whether the request meets every condition except the scenario, which the index checked.
    #[inline]
    fn matches(&self, req: &RequestView<'_>) -> bool {
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
}

impl RuleIndex {
    /// Compiles the conditions of validated rules, in order.
    pub(crate) fn new(rules: &[Rule]) -> RuleIndex {
        let mut index = Index::default();
        let mut matchers = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            matchers.push(Matcher::new(r));
            let ti = index.point_mut(&r.point);
            let group = match &r.target {
                None => &mut ti.any,
                Some(t) => ti.named.entry(t),
            };
            let segment = r.matcher.path.as_ref().and_then(pinned_segment);
            let exact = matchers[i].headers.iter().find_map(|(n, m)| match m {
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
        RuleIndex { matchers, index }
    }

    /// Calls `f` with the position of each rule that could match and whose conditions hold,
    /// in file order, until `f` returns `true`.
    /// Allocation-free: the candidate lists are merged on the stack.
    #[inline]
    pub(crate) fn for_candidates(&self, req: &RequestView<'_>, mut f: impl FnMut(usize) -> bool) {
        let Some(ti) = self.index.point(req.point) else {
            return;
        };
        // Most requests meet a few lists: kept in a small array; more take the long way.
        let mut few: [&[u32]; FEW] = [&[]; FEW];
        let mut n = 0;
        Self::lists(ti, req, |l| {
            if n < FEW {
                few[n] = l;
            }
            n += 1;
        });
        match n {
            0 => {}
            1 => {
                for &idx in few[0] {
                    if self.matchers[idx as usize].matches(req) && f(idx as usize) {
                        return;
                    }
                }
            }
            n if n <= FEW => self.merge(&mut few[..n], req, f),
            _ => self.many(ti, req, f),
        }
    }

    #[cold]
    #[inline(never)]
    fn many(&self, ti: &TargetIndex, req: &RequestView<'_>, f: impl FnMut(usize) -> bool) {
        let mut lists: [&[u32]; MAX_LISTS] = [&[]; MAX_LISTS];
        let mut n = 0;
        Self::lists(ti, req, |l| {
            lists[n] = l;
            n += 1;
        });
        self.merge(&mut lists[..n], req, f);
    }

    /// Calls `push` with each list of rules of `ti` that `req` could match.
    #[inline]
    fn lists<'a>(ti: &'a TargetIndex, req: &RequestView<'_>, mut push: impl FnMut(&'a [u32])) {
        let named = ti.named.get(req.target);
        let segment = req.path.map(first_segment);
        for g in [Some(&ti.any), named].into_iter().flatten() {
            if !g.plain.is_empty() {
                push(&g.plain);
            }
            if let Some(l) = segment.and_then(|seg| g.by_segment.get(seg)) {
                push(l);
            }
            for (name, by_value) in &g.by_header {
                if let Some(l) = req
                    .headers
                    .and_then(|h| h.get(name))
                    // Bytes, not `to_str`: an exact match compares bytes, UTF-8 included.
                    .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                    .and_then(|v| by_value.get(v))
                {
                    push(l);
                }
            }
            if g.by_scenario.is_empty() {
                continue;
            }
            if let Some(ctx) = req.context {
                for s in ctx.scenarios().iter().take(MAX_SCENARIOS) {
                    if let Some(l) = g.by_scenario.get(s) {
                        push(l);
                    }
                }
            }
        }
    }

    /// Merges sorted `lists`, calling `f` with each rule whose conditions hold, once, in
    /// file order, until it returns `true`.
    fn merge(&self, lists: &mut [&[u32]], req: &RequestView<'_>, mut f: impl FnMut(usize) -> bool) {
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
            if self.matchers[idx as usize].matches(req) && f(idx as usize) {
                return;
            }
        }
    }
}
