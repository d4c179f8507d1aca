//! The steady state: every injection point's outcomes and latency, counted cheaply.
//!
//! Each point records each piece of work it let through or failed while any chaos is
//! possible (the engine is armed): whether it was an error (as that point defines it: an
//! HTTP 5xx or a failing gRPC status, a failed call or statement), how long it took, and
//! whether chaos injected into it. Every outcome is counted; how long it took is kept for
//! every piece of work a rule matched and for a sample of the organic rest, about
//! [`ORGANIC_TIMINGS_PER_SECOND`] a second per point and target (every one while there are
//! fewer; more when the service guard needs them: see
//! [`Chaos::observe_sampled`](crate::Chaos::observe_sampled)), and [`Observed::timed`] says
//! how many a snapshot's p99 rests on. Injected work is counted apart, so the organic
//! steady state is never polluted by the experiment. Counters are atomics in per-second
//! slots, spread over a few shards so threads rarely share a cache line: recording takes no
//! lock and allocates nothing. An organic outcome that was not timed does not even read the
//! clock: its shard holds it until its next reading (every 16th such outcome) or until the
//! figures are read, whichever comes first, and counts it in the second it reads then; so
//! it lands in its own second or a later one, never in none. A snapshot sums the slots of a
//! window.
//!
//! The engine keeps one [`SteadyState`] per point and target
//! ([`Chaos::steady_state`](crate::Chaos::steady_state)), made on first use and shared by
//! every adapter recording there, so building many layers for one service costs one.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use chaos_core::Chaos;
//!
//! let chaos = Chaos::new();
//! let checkout = chaos.steady_state("server", "checkout");
//! checkout.record(Instant::now(), false, false);
//! checkout.record(Instant::now(), true, false);
//! let seen = chaos.steady_state("server", "checkout").snapshot(Duration::from_secs(10));
//! assert_eq!((seen.requests, seen.errors), (2, 1));
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::figures::Tally;
use super::ring::{Counts, Outcomes, Ring};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One-second slots kept: the longest window a snapshot can cover.
#[cfg(not(chaos_loom))]
const SLOTS: u64 = 64;
/// Shards, so concurrent threads mostly write to different cache lines.
#[cfg(not(chaos_loom))]
const SHARDS: usize = 4;
// Under the model checker, a ring small enough that a read of every slot stays within
// its bound on branches (the protocol is the same at any size).
#[cfg(chaos_loom)]
const SLOTS: u64 = 4;
#[cfg(chaos_loom)]
const SHARDS: usize = 2;

/// The steady state observed at one point and target.
///
/// Get it from [`Chaos::steady_state`](crate::Chaos::steady_state); see the
/// [module docs](self).
pub struct SteadyState {
    point: Box<str>,
    target: Box<str>,
    /// One-second slots, a lane per shard.
    seconds: Ring<Second, { SLOTS as usize }>,
    /// Which organic requests are timed.
    sampler: Sampler,
}

/// Organic timings wanted per second at one point and target when no service guard asks
/// for more: a 10-second snapshot's p99 then rests on at least 2,000 of them (its top 20).
pub const ORGANIC_TIMINGS_PER_SECOND: u32 = 200;

/// The organic timings wanted per second under `guard`: [`ORGANIC_TIMINGS_PER_SECOND`],
/// or twice the guard's `min_requests` spread over its window if that is more, so a
/// window with enough requests to judge always holds at least that many timings.
pub(crate) fn timings_wanted(guard: Option<&crate::rules::Guard>) -> u32 {
    let by_guard = guard.map_or(0, |g| {
        let secs = g.window.0.as_secs().max(1);
        g.min_requests.saturating_mul(2).div_ceil(secs)
    });
    u32::try_from(by_guard)
        .unwrap_or(u32::MAX)
        .max(ORGANIC_TIMINGS_PER_SECOND)
}

/// Which organic requests are timed: one in `stride`, counted down per shard. Each
/// second the stride is set from the last second's organic requests, so about
/// `wanted` of them are timed per second (every one while there are fewer).
struct Sampler {
    /// What the engine asks of every steady state's sample.
    asked: Arc<Sampling>,
    /// Time one organic request in this many.
    stride: AtomicU32,
    /// The second (ring epoch) the stride was last set for.
    set_for: AtomicU64,
    /// Per shard: the countdown to the next timed request, and the untimed outcomes not
    /// yet in a second.
    lanes: Box<[Lane]>,
}

/// Untimed organic outcomes a shard counts before it reads the clock to put them in their
/// second (a read of the figures puts them there at once).
const TICK: u32 = 16;

/// What an engine asks of the sample at every point: shared by its steady states.
#[derive(Debug)]
pub(crate) struct Sampling {
    /// Organic timings wanted per second (see [`timings_wanted`]).
    wanted: AtomicU32,
    /// A stride fixed by hand (0: adapt).
    pinned: AtomicU32,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling {
            wanted: AtomicU32::new(ORGANIC_TIMINGS_PER_SECOND),
            pinned: AtomicU32::new(0),
        }
    }
}

/// A shard's sampling state, on a cache line pair of its own: its countdown to the next
/// timed request, and the organic outcomes it counted without reading the clock, waiting
/// for their second.
#[repr(align(128))]
struct Lane {
    /// Requests left before the next timed one.
    countdown: AtomicU32,
    /// Untimed outcomes left before this shard next reads the clock.
    tick: AtomicU32,
    /// Untimed organic outcomes counted since they were last put in a second (the low
    /// half) and how many of them were errors (the high half): one word, so an outcome
    /// and its error are always taken together.
    pending: AtomicU64,
}

/// An error in a lane's `pending` word.
const PENDING_ERROR: u64 = 1 << 32;

impl Lane {
    fn new() -> Lane {
        Lane {
            countdown: AtomicU32::new(0),
            tick: AtomicU32::new(TICK),
            pending: AtomicU64::new(0),
        }
    }
}

/// One second of a shard: the organic outcomes, and the injected ones counted apart.
/// Each on 128 bytes of its own, so the seconds two threads are counting in never share
/// a pair of cache lines (adjacent-line prefetch fetches them in pairs).
#[repr(align(128))]
struct Second {
    organic: Outcomes,
    injected: AtomicU32,
    injected_errors: AtomicU32,
}

impl Counts for Second {
    fn new() -> Second {
        Second {
            organic: Outcomes::new(),
            injected: AtomicU32::new(0),
            injected_errors: AtomicU32::new(0),
        }
    }

    fn clear(&self) {
        self.organic.clear();
        self.injected.store(0, Ordering::Relaxed);
        self.injected_errors.store(0, Ordering::Relaxed);
    }
}

/// A summary of the outcomes in a window.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Observed {
    /// Organic responses (nothing injected).
    pub requests: u64,
    /// Organic responses that were errors.
    pub errors: u64,
    /// Responses to requests chaos injected a fault into.
    pub injected: u64,
    /// Injected responses that were errors (including dropped connections).
    pub injected_errors: u64,
    /// Organic responses that were timed: what `p99` rests on. Every request a rule
    /// matched is timed; organic ones are sampled, about
    /// [`ORGANIC_TIMINGS_PER_SECOND`] a second (every one while there are fewer).
    pub timed: u64,
    /// The organic 99th percentile latency of the timed responses (the upper bound of
    /// its bucket, within 50%; about 50 s for anything slower), `None` without any.
    pub p99: Option<Duration>,
}

impl Observed {
    /// Organic errors over organic requests, `0.0` without requests.
    pub fn error_rate(&self) -> f64 {
        super::figures::error_rate(self.requests, self.errors)
    }
}

impl fmt::Debug for SteadyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SteadyState")
            .field("point", &self.point)
            .field("target", &self.target)
            .field("last_minute", &self.snapshot(Duration::from_secs(60)))
            .finish()
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

#[inline]
pub(crate) fn shard_index() -> usize {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

/// Steps a shard's countdown: `true` on the step that ends it, which starts it again at
/// `every()`. Two relaxed accesses, no read-modify-write: two threads on one shard may
/// both take one step, so it keeps a rate, not a promise about each request.
#[inline]
fn count_down(c: &AtomicU32, every: impl FnOnce() -> u32) -> bool {
    let left = c.load(Ordering::Relaxed);
    if left > 1 {
        c.store(left - 1, Ordering::Relaxed);
        return false;
    }
    c.store(every(), Ordering::Relaxed);
    true
}

impl SteadyState {
    pub(crate) fn new(point: &str, target: &str, asked: Arc<Sampling>) -> SteadyState {
        let base = Instant::now();
        let stride = asked.pinned.load(Ordering::Relaxed).max(1);
        SteadyState {
            point: point.into(),
            target: target.into(),
            seconds: Ring::new(base, Duration::from_secs(1), SHARDS),
            sampler: Sampler {
                asked,
                stride: AtomicU32::new(stride),
                set_for: AtomicU64::new(0),
                lanes: (0..SHARDS).map(|_| Lane::new()).collect(),
            },
        }
    }

    /// Whether to time the next organic request here (see [`ORGANIC_TIMINGS_PER_SECOND`]):
    /// a step of this thread's shard's countdown.
    #[inline]
    pub(crate) fn sample(&self) -> bool {
        count_down(&self.sampler.lanes[shard_index()].countdown, || {
            self.sampler.stride.load(Ordering::Relaxed)
        })
    }

    /// Times no organic request until the next record (tests of what is timed
    /// regardless).
    #[cfg(test)]
    pub(crate) fn never_sample(&self) {
        self.sampler.stride.store(u32::MAX, Ordering::Relaxed);
        for l in &*self.sampler.lanes {
            l.countdown.store(u32::MAX, Ordering::Relaxed);
        }
    }

    /// Sets the stride for second `epoch` from the organic requests of the second
    /// before, once per second (by whoever records first in it).
    #[cold]
    fn resample(&self, epoch: u64, seen: u64) {
        let s = &self.sampler;
        if s.set_for
            .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if s.asked.pinned.load(Ordering::Relaxed) != 0 {
            return;
        }
        let mut last = Tally::default();
        for lane in 0..SHARDS {
            if let Some(sec) = self.seconds.counted(epoch - 1, lane) {
                sec.organic.add_to(&mut last);
            }
        }
        let wanted = u64::from(s.asked.wanted.load(Ordering::Relaxed).max(1));
        let stride = u32::try_from((last.requests / wanted).max(1)).unwrap_or(u32::MAX);
        s.stride.store(stride, Ordering::Relaxed);
        // A countdown left from a faster second must not hold the next timing back.
        for l in &*s.lanes {
            if l.countdown.load(Ordering::Relaxed) > stride {
                l.countdown.store(stride, Ordering::Relaxed);
            }
        }
    }

    /// The point it observes.
    pub fn point(&self) -> &str {
        &self.point
    }

    /// The target it observes (empty for a point with no name).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Records one outcome: work that began at `start`, whether it was an error, whether
    /// chaos injected into it. No lock, no allocation.
    #[inline]
    pub fn record(&self, start: Instant, error: bool, injected: bool) {
        self.record_at(Some(start), Instant::now(), error, injected);
    }

    /// [`record`](Self::record) with the clock already read, and the start only if the
    /// work was timed.
    #[inline]
    pub(crate) fn record_at(
        &self,
        start: Option<Instant>,
        now: Instant,
        error: bool,
        injected: bool,
    ) {
        let epoch = self.seconds.epoch(now);
        self.resample_if_due(epoch);
        let Some(second) = self.seconds.slot_in(epoch, shard_index()) else {
            return;
        };
        if injected {
            second.injected.fetch_add(1, Ordering::Relaxed);
            if error {
                second.injected_errors.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let latency = start.map(|s| now.saturating_duration_since(s));
            second.organic.add(latency, error);
        }
    }

    /// Counts an organic outcome that was not timed, without reading the clock: into this
    /// thread's shard, which puts what it counted so in the second it reads at its next
    /// clock reading (every [`TICK`]th untimed outcome), or sooner when the figures are
    /// read. So an untimed outcome is counted in its own second or a later one, by at
    /// most the time the shard takes to count [`TICK`] more, and always before anyone
    /// reads it.
    #[inline]
    pub(crate) fn count_untimed(&self, error: bool) {
        let i = shard_index();
        let lane = &self.sampler.lanes[i];
        lane.pending
            .fetch_add(1 + PENDING_ERROR * u64::from(error), Ordering::Relaxed);
        if count_down(&lane.tick, || TICK) {
            self.tick(i);
        }
    }

    /// A shard's clock reading: what it counted untimed goes in the second it reads, and
    /// the sample's stride is set if the second is new.
    #[cold]
    #[inline(never)]
    fn tick(&self, lane: usize) {
        let epoch = self.seconds.epoch(Instant::now());
        self.resample_if_due(epoch);
        self.settle_pending(lane, epoch);
    }

    /// Puts the untimed outcomes `lane` counted in second `epoch`. Each is taken by one
    /// caller only (a swap), so two racing callers count none of them twice.
    pub(crate) fn settle_pending(&self, lane: usize, epoch: u64) {
        let l = &self.sampler.lanes[lane];
        if l.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let taken = l.pending.swap(0, Ordering::Relaxed);
        // A shard's tick comes every 16th outcome, so neither half nears its limit.
        let (requests, errors) = (taken as u32, (taken >> 32) as u32);
        if let Some(second) = self.seconds.slot_in(epoch, lane) {
            second.organic.add_untimed(requests, errors);
        }
    }

    /// Sets the sample's stride for second `epoch` if nobody has yet.
    #[inline]
    fn resample_if_due(&self, epoch: u64) {
        let seen = self.sampler.set_for.load(Ordering::Relaxed);
        // Forward only: a record whose clock was read before the second turned (late)
        // does not set the stride back.
        if seen < epoch {
            self.resample(epoch, seen);
        }
    }

    /// Every second of the last `window` (whole seconds, at most 64 s), the untimed
    /// outcomes the shards hold put in the current one first.
    fn seconds(&self, window: Duration, mut each: impl FnMut(&Second)) {
        let span = window.as_secs().clamp(1, SLOTS);
        let now = Instant::now();
        let epoch = self.seconds.epoch(now);
        for lane in 0..SHARDS {
            self.settle_pending(lane, epoch);
        }
        self.seconds.window(now, span, &mut each);
    }

    /// The responses of the last `window` (whole seconds, at most 64 s).
    pub fn snapshot(&self, window: Duration) -> Observed {
        let mut organic = Tally::default();
        let (mut injected, mut injected_errors) = (0, 0);
        self.seconds(window, |s| {
            s.organic.add_to(&mut organic);
            injected += u64::from(s.injected.load(Ordering::Relaxed));
            injected_errors += u64::from(s.injected_errors.load(Ordering::Relaxed));
        });
        Observed {
            requests: organic.requests,
            errors: organic.errors,
            injected,
            injected_errors,
            timed: organic.timed(),
            p99: organic.p99(),
        }
    }

    /// Adds the organic responses of the last `window` to `tally` (for the service guard).
    pub(crate) fn add_organic(&self, window: Duration, tally: &mut Tally) {
        self.seconds(window, |s| s.organic.add_to(tally));
    }
}

#[cfg(all(test, chaos_loom))]
impl SteadyState {
    /// The organic requests and errors counted in second `epoch` of `lane` (the slot
    /// claimed for it first): what a model of the hand-off reads, with no clock.
    pub(crate) fn counted_in(&self, epoch: u64, lane: usize) -> (u64, u64, u64) {
        let mut t = Tally::default();
        if let Some(sec) = self.seconds.slot_in(epoch, lane) {
            sec.organic.add_to(&mut t);
        }
        let pending = self.sampler.lanes[lane].pending.load(Ordering::Relaxed);
        (t.requests, t.errors, pending)
    }
}

/// Every point and target's steady state, for the engine: read without a lock, added to
/// under one.
#[derive(Default)]
pub(crate) struct Registry {
    all: ArcSwap<Vec<Arc<SteadyState>>>,
    writer: Mutex<()>,
    /// What is asked of every steady state's sample.
    sampling: Arc<Sampling>,
}

impl Registry {
    /// The steady state of `point` and `target`, made on first use.
    pub(crate) fn get(&self, point: &str, target: &str) -> Arc<SteadyState> {
        if let Some(s) = self.find(point, target) {
            return s;
        }
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.find(point, target) {
            return s;
        }
        let made = Arc::new(SteadyState::new(point, target, self.sampling.clone()));
        let mut all = Vec::clone(&self.all.load());
        all.push(made.clone());
        self.all.store(Arc::new(all));
        made
    }

    fn find(&self, point: &str, target: &str) -> Option<Arc<SteadyState>> {
        self.all
            .load()
            .iter()
            .find(|s| &*s.point == point && &*s.target == target)
            .cloned()
    }

    /// Records at `point` and `target` without taking a reference (the generic injection
    /// point, whose names come with each call).
    pub(crate) fn record(
        &self,
        point: &str,
        target: &str,
        start: Option<Instant>,
        error: bool,
        injected: bool,
    ) {
        let all = self.all.load();
        match all
            .iter()
            .find(|s| &*s.point == point && &*s.target == target)
        {
            Some(s) => s.record_at(start, Instant::now(), error, injected),
            None => {
                drop(all);
                let s = self.get(point, target);
                s.record_at(start, Instant::now(), error, injected);
            }
        }
    }

    /// Times one organic request in `one_in` at every steady state, made or to be made,
    /// instead of adapting (0: adapt again).
    pub(crate) fn pin_sample(&self, one_in: u32) {
        self.sampling.pinned.store(one_in, Ordering::Relaxed);
        for s in self.all.load().iter() {
            s.sampler.stride.store(one_in.max(1), Ordering::Relaxed);
        }
    }

    /// Sets the organic timings wanted per second (see [`timings_wanted`]).
    pub(crate) fn want_timings(&self, per_second: u32) {
        self.sampling.wanted.store(per_second, Ordering::Relaxed);
    }

    pub(crate) fn all(&self) -> Vec<Arc<SteadyState>> {
        Vec::clone(&self.all.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_organic_and_injected_apart() {
        let s = SteadyState::new("server", "", Arc::default());
        let start = Instant::now();
        for i in 0..200 {
            s.record(start, i % 10 == 0, false);
        }
        s.record(start, true, true);
        s.record(start, false, true);
        let o = s.snapshot(Duration::from_secs(30));
        assert_eq!((o.requests, o.errors), (200, 20));
        assert_eq!((o.injected, o.injected_errors), (2, 1));
        assert!((o.error_rate() - 0.1).abs() < 1e-9);
        assert!(o.p99.is_some());
    }

    #[test]
    fn p99_tracks_the_slow_tail() {
        let s = SteadyState::new("server", "", Arc::default());
        let now = Instant::now();
        // 95 fast responses and 5 that took two seconds: p99 is in the slow bucket.
        for _ in 0..95 {
            s.record(now, false, false);
        }
        let slow = now - Duration::from_secs(2);
        for _ in 0..5 {
            s.record(slow, false, false);
        }
        let p99 = s.snapshot(Duration::from_secs(10)).p99.unwrap();
        assert!(
            p99 >= Duration::from_secs(2) && p99 < Duration::from_secs(3),
            "{p99:?}"
        );
    }

    /// Requests and timings counted in second `epoch`, over every shard.
    fn second(s: &SteadyState, epoch: u64) -> (u64, u64) {
        let mut t = Tally::default();
        for lane in 0..SHARDS {
            if let Some(sec) = s.seconds.counted(epoch, lane) {
                sec.organic.add_to(&mut t);
            }
        }
        (t.requests, t.timed())
    }

    /// Every organic request is counted; about `wanted` a second are timed, every one
    /// while there are fewer, and the sample follows the traffic down at once.
    #[test]
    fn organic_timings_are_sampled_to_the_rate_wanted() {
        let s = SteadyState::new("server", "", Arc::default());
        let base = Instant::now();
        let run = |sec: u64, requests: u64| {
            let at = base + Duration::from_millis(sec * 1000 + 500);
            for _ in 0..requests {
                let timed = s.sample();
                s.record_at(timed.then_some(at), at, false, false);
            }
            second(&s, s.seconds.epoch(at))
        };
        // No history yet: every request timed.
        assert_eq!(run(0, 10_000), (10_000, 10_000));
        // 10,000 a second: one in 50 timed.
        let (requests, timed) = run(1, 10_000);
        assert_eq!(requests, 10_000);
        assert!((190..=210).contains(&timed), "{timed} timed");
        // Traffic falls to 50 a second: the sample catches up within a second...
        let (requests, timed) = run(2, 50);
        assert_eq!(requests, 50);
        assert!(timed >= 1, "the countdown was cut to the new stride");
        // ... and then times every request (but the first, sampled as it began, before
        // the second's first record set the stride).
        let (requests, timed) = run(3, 50);
        assert_eq!(requests, 50);
        assert!(timed >= 49, "{timed} timed");
    }

    /// A shard puts its untimed outcomes in a second at its own clock reading, every
    /// `TICK`th; those still waiting are in every snapshot taken after them, once.
    #[test]
    fn untimed_outcomes_are_counted_before_anyone_reads_them() {
        let s = SteadyState::new("server", "", Arc::default());
        let lane = &s.sampler.lanes[shard_index()];
        let in_seconds = || {
            let epoch = s.seconds.epoch(Instant::now());
            second(&s, epoch).0 + second(&s, epoch - 1).0
        };
        for _ in 1..TICK {
            s.count_untimed(false);
        }
        assert_eq!(lane.pending.load(Ordering::Relaxed), u64::from(TICK - 1));
        assert_eq!(in_seconds(), 0, "waiting for the shard's clock reading");
        s.count_untimed(false);
        assert_eq!(lane.pending.load(Ordering::Relaxed), 0);
        assert_eq!(in_seconds(), u64::from(TICK), "in a second at the tick");

        for i in 0..5 {
            s.count_untimed(i % 2 == 0);
        }
        assert_eq!(in_seconds(), u64::from(TICK));
        let seen = s.snapshot(Duration::from_secs(10));
        assert_eq!(
            (seen.requests, seen.errors, seen.timed),
            (u64::from(TICK) + 5, 3, 0)
        );
        // Read twice: counted once.
        assert_eq!(s.snapshot(Duration::from_secs(10)), seen);
        // Timed and untimed outcomes add up.
        s.record(Instant::now(), true, false);
        let seen = s.snapshot(Duration::from_secs(10));
        assert_eq!(
            (seen.requests, seen.errors, seen.timed),
            (u64::from(TICK) + 6, 4, 1)
        );
    }

    #[test]
    fn a_service_guard_asks_for_enough_timings_to_judge_its_window() {
        use crate::rules::Guard;
        assert_eq!(timings_wanted(None), ORGANIC_TIMINGS_PER_SECOND);
        // The default guard (20 requests in 30 s) needs fewer than the floor.
        let g = Guard::new(Duration::from_secs(30));
        assert_eq!(timings_wanted(Some(&g)), ORGANIC_TIMINGS_PER_SECOND);
        // 5,000 requests in 10 s: twice that, a second.
        let mut g = Guard::new(Duration::from_secs(10));
        g.min_requests = 5_000;
        assert_eq!(timings_wanted(Some(&g)), 1_000);
    }
}
