//! OpenTelemetry (feature `otel`): the engine's metrics, and the chaos context in W3C
//! `baggage`.
//!
//! # Metrics
//!
//! Recorded through the `opentelemetry` API crate, on the [`Meter`] given to
//! [`Builder::meter`](crate::engine::Builder::meter), else on the global meter provider as
//! it is when the engine first records something (so an application may install its
//! provider after building the engine). The SDK, its exporters and views stay the
//! application's choice.
//!
//! | instrument | kind | attributes | when |
//! |---|---|---|---|
//! | [`chaos.injections`](INJECTIONS) | counter | `rule`, `fault`, `point`, `target`, `mode` | a fault is injected (`mode=inject`) or a shadow rule would have injected (`mode=shadow`) |
//! | [`chaos.injected_delay`](INJECTED_DELAY) | histogram, s | `rule`, `point`, `target` | a delay is injected: the delay drawn |
//! | [`chaos.aborts`](ABORTS) | counter | `rule`, `reason` | a rule stops: `guard`, `service_guard`, `budget` (its `max_errors` spent), `manual`; the kill switch turning on counts once as `rule=*`, `reason=kill_switch` |
//! | [`chaos.header_rejected`](HEADER_REJECTED) | counter | `reason` | a part of a chaos header is ignored, with the stable code of [`HeaderError::code`](crate::context::HeaderError::code); `bad_signature` for a refused signature, `directives_refused` for directives neither allowed nor signed |
//! | [`chaos.cohort.requests`](COHORT_REQUESTS) | counter | `rule`, `cohort` | a request a rule matched has its outcome: `cohort=experiment` (the fault was applied, or would have been for a shadow rule) or `control` (matched, left alone) |
//! | [`chaos.cohort.errors`](COHORT_ERRORS) | counter | `rule`, `cohort` | the same, when the outcome was an error |
//! | [`chaos.cohort.duration`](COHORT_DURATION) | histogram, s | `rule`, `cohort` | the same: the request's latency |
//!
//! A rule's attributes are its id, its fault's kind (`delay`, `abort`, `drop`, `error`,
//! `body`), its point and its target as written (`*` when it has none), so the number of
//! series grows with the rules, never with the traffic. They are built once, when the rule
//! is loaded. A per-request directive counts as `rule=x-chaos` with the request's point and
//! target. A request that matches nothing records nothing and allocates nothing.
//!
//! # Baggage
//!
//! With this feature, [`ChaosContext::forward_to`] also writes the context as W3C baggage
//! members, merged with the request's own `baggage` (other members are kept as they are;
//! ours replace any earlier ones; nothing is added past the W3C limits of 64 members and
//! 8192 bytes):
//!
//! | member | value |
//! |---|---|
//! | `chaos` | the `x-chaos` value, percent-encoded |
//! | `chaos-signature` | the `x-chaos-signature` value, for a signed context |
//! | `test-traffic` | `1` |
//!
//! A signed context survives a hop that forwards only `baggage`: the signature is a MAC
//! over the exact `x-chaos` value, and both travel byte for byte. The hop counter travels
//! inside the signature (`h=N`), as it does in the header. Read back with
//! [`Chaos::context_from_baggage`] (a `baggage` header) or
//! [`Chaos::context_from_otel`] (an OpenTelemetry [`Context`]'s baggage), a context is
//! checked exactly as headers are: directives need `allow_directives` or a valid
//! signature, so baggage an outside caller sends cannot switch a fault on by itself.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::context::ChaosContext;
use crate::engine::Chaos;
use crate::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};
use crate::rules::{Fault, Rule};

/// Counter: faults injected, or that a shadow rule would have injected.
pub const INJECTIONS: &str = "chaos.injections";
/// Histogram (seconds): the delays injected.
pub const INJECTED_DELAY: &str = "chaos.injected_delay";
/// Counter: rules stopped, by reason.
pub const ABORTS: &str = "chaos.aborts";
/// Counter: parts of chaos headers ignored, by reason.
pub const HEADER_REJECTED: &str = "chaos.header_rejected";
/// Counter: requests a rule matched, by cohort, counted at their outcome.
pub const COHORT_REQUESTS: &str = "chaos.cohort.requests";
/// Counter: of those, the ones whose outcome was an error.
pub const COHORT_ERRORS: &str = "chaos.cohort.errors";
/// Histogram (seconds): their latency.
pub const COHORT_DURATION: &str = "chaos.cohort.duration";

/// The `baggage` header.
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Latency buckets, in seconds (OpenTelemetry's HTTP duration advice, extended to 30 s for
/// injected hangs and long delays).
const SECONDS: [f64; 17] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0,
    30.0,
];

/// The instruments, made on first use.
struct Instruments {
    injections: Counter<u64>,
    injected_delay: Histogram<f64>,
    aborts: Counter<u64>,
    header_rejected: Counter<u64>,
    cohort_requests: Counter<u64>,
    cohort_errors: Counter<u64>,
    cohort_duration: Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Instruments {
        Instruments {
            injections: meter
                .u64_counter(INJECTIONS)
                .with_description("Faults injected (mode=inject) or that a shadow rule would have injected (mode=shadow)")
                .with_unit("{injection}")
                .build(),
            injected_delay: meter
                .f64_histogram(INJECTED_DELAY)
                .with_description("Delays injected")
                .with_unit("s")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            aborts: meter
                .u64_counter(ABORTS)
                .with_description("Rules stopped: by a guard, the service guard, an error budget, by hand, or the kill switch")
                .with_unit("{abort}")
                .build(),
            header_rejected: meter
                .u64_counter(HEADER_REJECTED)
                .with_description("Parts of chaos headers ignored")
                .with_unit("{item}")
                .build(),
            cohort_requests: meter
                .u64_counter(COHORT_REQUESTS)
                .with_description("Requests a rule matched, by cohort (experiment: fault applied; control: left alone)")
                .with_unit("{request}")
                .build(),
            cohort_errors: meter
                .u64_counter(COHORT_ERRORS)
                .with_description("Requests a rule matched whose outcome was an error, by cohort")
                .with_unit("{request}")
                .build(),
            cohort_duration: meter
                .f64_histogram(COHORT_DURATION)
                .with_description("Latency of the requests a rule matched, by cohort")
                .with_unit("s")
                .with_boundaries(SECONDS.to_vec())
                .build(),
        }
    }
}

/// The engine's instruments: from the builder's meter, else the global provider's.
pub(crate) struct Metrics {
    meter: Option<Meter>,
    instruments: OnceLock<Instruments>,
}

impl Metrics {
    pub(crate) fn new(meter: Option<Meter>) -> Metrics {
        let m = Metrics {
            meter,
            instruments: OnceLock::new(),
        };
        if let Some(meter) = &m.meter {
            let _ = m.instruments.set(Instruments::new(meter));
        }
        m
    }

    #[cold]
    fn get(&self) -> &Instruments {
        self.instruments.get_or_init(|| {
            let scope = InstrumentationScope::builder("chaos-core")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            Instruments::new(&opentelemetry::global::meter_with_scope(scope))
        })
    }

    /// A fault injected (or, `shadow`, that would have been).
    #[cold]
    pub(crate) fn injection(
        &self,
        rule: Option<&RuleAttrs>,
        fault: &Fault,
        point: &str,
        target: &str,
        delay: Option<Duration>,
        shadow: bool,
    ) {
        let m = self.get();
        let delay = delay.filter(|_| !shadow);
        match rule {
            Some(a) => {
                let attrs = if shadow { &a.shadow } else { &a.inject };
                m.injections.add(1, attrs);
                if let Some(d) = delay {
                    m.injected_delay.record(d.as_secs_f64(), &a.delay);
                }
            }
            None => {
                // A per-request directive: not a rule, so its attributes are made here.
                let point = KeyValue::new("point", point.to_owned());
                let target = KeyValue::new("target", target.to_owned());
                let rule = KeyValue::new("rule", "x-chaos");
                m.injections.add(
                    1,
                    &[
                        rule.clone(),
                        KeyValue::new("fault", fault.kind_name()),
                        point.clone(),
                        target.clone(),
                        KeyValue::new("mode", "inject"),
                    ],
                );
                if let Some(d) = delay {
                    m.injected_delay
                        .record(d.as_secs_f64(), &[rule, point, target]);
                }
            }
        }
    }

    /// A matched request's outcome, in its rule's cohort.
    #[cold]
    pub(crate) fn cohort(&self, a: &RuleAttrs, experiment: bool, latency: Duration, error: bool) {
        let m = self.get();
        let attrs = if experiment {
            &a.experiment
        } else {
            &a.control
        };
        m.cohort_requests.add(1, attrs);
        if error {
            m.cohort_errors.add(1, attrs);
        }
        m.cohort_duration.record(latency.as_secs_f64(), attrs);
    }

    /// A rule stopped (`rule` is `*` for the kill switch).
    #[cold]
    pub(crate) fn abort(&self, rule: &str, reason: &'static str) {
        self.get().aborts.add(
            1,
            &[
                KeyValue::new("rule", rule.to_owned()),
                KeyValue::new("reason", reason),
            ],
        );
    }

    /// `n` parts of a chaos header ignored, for `reason` (a stable code).
    #[cold]
    pub(crate) fn header_rejected(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.get()
                .header_rejected
                .add(n, &[KeyValue::new("reason", reason)]);
        }
    }
}

/// A rule's attribute sets, built when it is loaded.
pub(crate) struct RuleAttrs {
    inject: [KeyValue; 5],
    shadow: [KeyValue; 5],
    delay: [KeyValue; 3],
    experiment: [KeyValue; 2],
    control: [KeyValue; 2],
}

impl RuleAttrs {
    pub(crate) fn new(rule: &Rule) -> Arc<RuleAttrs> {
        let id = KeyValue::new("rule", rule.id.clone());
        let point = KeyValue::new("point", rule.point.clone());
        let target = KeyValue::new("target", rule.target.clone().unwrap_or_else(|| "*".into()));
        let fault = KeyValue::new("fault", rule.fault.kind_name());
        let with_mode = |mode: &'static str| {
            [
                id.clone(),
                fault.clone(),
                point.clone(),
                target.clone(),
                KeyValue::new("mode", mode),
            ]
        };
        Arc::new(RuleAttrs {
            inject: with_mode("inject"),
            shadow: with_mode("shadow"),
            delay: [id.clone(), point.clone(), target.clone()],
            experiment: [id.clone(), KeyValue::new("cohort", "experiment")],
            control: [id, KeyValue::new("cohort", "control")],
        })
    }
}

// ---- baggage

/// W3C baggage limits: what every platform must propagate.
const MAX_MEMBERS: usize = 64;
const MAX_BYTES: usize = 8192;

/// Our members' keys.
const CHAOS: &str = "chaos";
const SIGNATURE: &str = "chaos-signature";
const TEST_TRAFFIC: &str = "test-traffic";

/// What a baggage value may not hold as is (W3C `baggage-octet` excludes controls, space,
/// `"`, `,`, `;`, `\`; `%` is the escape itself).
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(0x7f);

/// The key of a list member (`key=value;props`), if it is one of ours.
fn our_key(member: &str) -> Option<&'static str> {
    let key = member.split_once('=')?.0.trim();
    [CHAOS, SIGNATURE, TEST_TRAFFIC]
        .into_iter()
        .find(|k| *k == key)
}

/// The value of one of our members, percent-decoded, without its properties.
fn member_value(member: &str) -> Option<Cow<'_, str>> {
    let (_, rest) = member.split_once('=')?;
    let value = rest.split(';').next()?.trim();
    Some(percent_decode_str(value).decode_utf8_lossy())
}

impl Chaos {
    /// The chaos context carried in a W3C `baggage` header (`chaos`, `chaos-signature`,
    /// `test-traffic` members; see [`otel`](crate::otel)), checked as headers are.
    ///
    /// ```
    /// use chaos_core::Chaos;
    ///
    /// let chaos = Chaos::new();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("baggage", "user=7,chaos=scenario%3Dgameday-7,test-traffic=1".parse().unwrap());
    /// let ctx = chaos.context_from_baggage(&headers).unwrap();
    /// assert!(ctx.has_scenario("gameday-7") && ctx.is_test_traffic());
    /// ```
    pub fn context_from_baggage(&self, headers: &HeaderMap) -> Option<ChaosContext> {
        let mut found: Option<HeaderMap> = None;
        for v in headers.get_all(&BAGGAGE) {
            if !names_ours(v.as_bytes()) {
                continue;
            }
            let Ok(s) = v.to_str() else { continue };
            for member in s.split(',') {
                let Some(key) = our_key(member) else { continue };
                let Some(value) = member_value(member) else {
                    continue;
                };
                put(found.get_or_insert_with(HeaderMap::new), key, &value);
            }
        }
        self.context_from_headers(&found?)
    }

    /// The chaos context in an OpenTelemetry context's baggage (the members of
    /// [`context_from_baggage`](Self::context_from_baggage)), checked as headers are.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use opentelemetry::baggage::BaggageExt;
    /// use opentelemetry::{Context, KeyValue};
    ///
    /// let cx = Context::new().with_baggage([KeyValue::new("chaos", "scenario=gameday-7")]);
    /// let ctx = Chaos::new().context_from_otel(&cx).unwrap();
    /// assert!(ctx.has_scenario("gameday-7"));
    /// ```
    pub fn context_from_otel(&self, cx: &Context) -> Option<ChaosContext> {
        let bag = cx.baggage();
        if bag.is_empty() {
            return None;
        }
        let mut found: Option<HeaderMap> = None;
        for key in [CHAOS, SIGNATURE, TEST_TRAFFIC] {
            if let Some(v) = bag.get(key) {
                put(found.get_or_insert_with(HeaderMap::new), key, v.as_str());
            }
        }
        self.context_from_headers(&found?)
    }

    /// [`context_from_otel`](Self::context_from_otel) for the current OpenTelemetry
    /// context (the one attached to this thread).
    #[inline]
    pub fn context_from_current_otel(&self) -> Option<ChaosContext> {
        Context::map_current(|cx| self.context_from_otel(cx))
    }
}

/// Whether a `baggage` value may hold one of our members: a member whose key starts
/// `chaos` or `test-traffic`. One pass over the bytes, so a request whose baggage is
/// someone else's pays a few instructions per byte (`str::contains` would set up a
/// substring search, hundreds of instructions, per call): the members' starts only.
#[inline]
fn names_ours(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        while i < v.len() && matches!(v[i], b' ' | b'\t') {
            i += 1;
        }
        let member = &v[i..];
        if member.starts_with(CHAOS.as_bytes()) || member.starts_with(TEST_TRAFFIC.as_bytes()) {
            return true;
        }
        match member.iter().position(|&b| b == b',') {
            Some(p) => i += p + 1,
            None => return false,
        }
    }
    false
}

/// Puts our member `key` into `headers` as the header it stands for.
fn put(headers: &mut HeaderMap, key: &str, value: &str) {
    let Ok(value) = HeaderValue::from_str(value) else {
        return;
    };
    let name = match key {
        CHAOS => X_CHAOS,
        SIGNATURE => X_CHAOS_SIGNATURE,
        _ => X_TEST_TRAFFIC,
    };
    headers.insert(name, value);
}

/// Writes the next hop's context into `headers`' `baggage`, merged: other members are
/// kept as they are, ours replace earlier ones, and nothing is written if the result would
/// pass the W3C limits (64 members, 8192 bytes).
pub(crate) fn write_baggage(
    headers: &mut HeaderMap,
    x_chaos: Option<&HeaderValue>,
    signature: Option<&HeaderValue>,
    test_traffic: bool,
) {
    let mut ours: Vec<String> = Vec::with_capacity(3);
    let mut add = |key: &str, v: &HeaderValue| {
        if let Ok(s) = v.to_str() {
            ours.push(format!("{key}={}", utf8_percent_encode(s, VALUE)));
        }
    };
    if let Some(v) = x_chaos {
        add(CHAOS, v);
        if let Some(s) = signature {
            add(SIGNATURE, s);
        }
    }
    if test_traffic {
        ours.push(format!("{TEST_TRAFFIC}=1"));
    }
    if ours.is_empty() {
        return;
    }
    let mut members: Vec<&str> = Vec::new();
    for v in headers.get_all(&BAGGAGE) {
        let Ok(s) = v.to_str() else {
            // Not text: leave the header alone rather than lose what is in it.
            return;
        };
        members.extend(
            s.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty() && our_key(m).is_none()),
        );
    }
    if members.len() + ours.len() > MAX_MEMBERS {
        return;
    }
    let mut joined = members.join(",");
    for m in &ours {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(m);
    }
    if joined.len() > MAX_BYTES {
        return;
    }
    let Ok(value) = HeaderValue::try_from(joined) else {
        return;
    };
    headers.remove(&BAGGAGE);
    headers.insert(BAGGAGE, value);
}

/// Removes our members from `baggage`, keeping the others (at a trust boundary, with the
/// chaos headers).
pub fn strip_baggage(headers: &mut HeaderMap) {
    if !headers.contains_key(&BAGGAGE) {
        return;
    }
    let mut kept: Vec<HeaderValue> = Vec::new();
    for v in headers.get_all(&BAGGAGE) {
        let Ok(s) = v.to_str() else {
            kept.push(v.clone());
            continue;
        };
        if our_key_in(s) {
            let rest: Vec<&str> = s
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty() && our_key(m).is_none())
                .collect();
            if let Ok(v) = HeaderValue::try_from(rest.join(","))
                && !v.is_empty()
            {
                kept.push(v);
            }
        } else {
            kept.push(v.clone());
        }
    }
    headers.remove(&BAGGAGE);
    for v in kept {
        headers.append(&BAGGAGE, v);
    }
}

fn our_key_in(s: &str) -> bool {
    s.split(',').any(|m| our_key(m).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(h: &HeaderMap) -> Vec<&str> {
        h.get_all(&BAGGAGE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn reads_our_members_only() {
        let chaos = Chaos::new();
        let mut h = HeaderMap::new();
        h.insert(
            BAGGAGE,
            HeaderValue::from_static("user=1, chaos=scenario%3Dgameday-7;p=1, test-traffic=1"),
        );
        let ctx = chaos.context_from_baggage(&h).unwrap();
        assert!(ctx.has_scenario("gameday-7"));
        assert!(ctx.is_test_traffic());
        strip_baggage(&mut h);
        assert_eq!(bag(&h), ["user=1"]);
    }

    #[test]
    fn the_quick_check_finds_member_keys_only() {
        assert!(names_ours(b"chaos=x"));
        assert!(names_ours(b"user=1, \tchaos-signature=t"));
        assert!(names_ours(b"a=b,test-traffic=1"));
        assert!(!names_ours(b"user=chaos,tenant=test-traffic"));
        assert!(!names_ours(b""));
        assert!(!names_ours(b"user=1,tenant=acme"));
    }

    #[test]
    fn nothing_of_ours_is_none() {
        let mut h = HeaderMap::new();
        h.insert(
            BAGGAGE,
            HeaderValue::from_static("user=1,tenant=a,chaosmonkey=3"),
        );
        assert!(Chaos::new().context_from_baggage(&h).is_none());
        assert!(Chaos::new().context_from_otel(&Context::new()).is_none());
    }

    #[test]
    fn writes_merged_replacing_ours_keeping_the_rest() {
        let mut h = HeaderMap::new();
        h.append(
            BAGGAGE,
            HeaderValue::from_static("user=7;prop=a, chaos=old"),
        );
        h.append(BAGGAGE, HeaderValue::from_static("tenant=acme"));
        let x = HeaderValue::from_static("scenario=gameday-7, delay=300ms;point=client");
        write_baggage(&mut h, Some(&x), None, true);
        assert_eq!(
            bag(&h),
            [
                "user=7;prop=a,tenant=acme,chaos=scenario=gameday-7%2C%20delay=300ms%3Bpoint=client,test-traffic=1"
            ]
        );
        // And it reads back to the same context.
        let ctx = Chaos::builder()
            .rules(
                crate::rules::RuleSet::parse(crate::rules::Format::Yaml, "allow_directives: true")
                    .unwrap(),
            )
            .build()
            .unwrap()
            .context_from_baggage(&h)
            .unwrap();
        assert!(ctx.has_scenario("gameday-7"));
        assert_eq!(ctx.directives().len(), 1);
    }

    #[test]
    fn respects_the_w3c_limits() {
        let many: Vec<String> = (0..63).map(|i| format!("k{i}=v")).collect();
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::try_from(many.join(",")).unwrap());
        let before = bag(&h).join("");
        let x = HeaderValue::from_static("scenario=a");
        // 63 + chaos + test-traffic = 65 members: nothing is written, nothing dropped.
        write_baggage(&mut h, Some(&x), None, true);
        assert_eq!(bag(&h).join(""), before);
        // 63 + chaos = 64: fits.
        write_baggage(&mut h, Some(&x), None, false);
        assert!(bag(&h)[0].ends_with(",chaos=scenario=a"));

        let mut h = HeaderMap::new();
        let big = format!("blob={}", "x".repeat(8180));
        h.insert(BAGGAGE, HeaderValue::try_from(big.clone()).unwrap());
        write_baggage(&mut h, Some(&x), None, false);
        assert_eq!(bag(&h), [big.as_str()]);
    }
}
