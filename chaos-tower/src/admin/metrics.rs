//! `GET /chaos/metrics`: the engine's figures in the Prometheus text exposition format
//! (0.0.4), made from its counters when scraped; nothing is recorded for it on the request
//! path.
//!
//! The names and labels are those the OpenTelemetry Prometheus exporter gives the `otel`
//! instruments of chaos-core (`chaos.injections` → `chaos_injections_total`, ...), so one
//! set of queries serves a fleet whichever way it exports:
//!
//! | series | kind | labels |
//! |---|---|---|
//! | `chaos_injections_total` | counter | `rule`, `fault`, `point`, `target`, `mode` (a shadow rule counts what it would have injected) |
//! | `chaos_matched_total` | counter | `rule`, `point`, `target`: requests that met the rule's conditions |
//! | `chaos_cohort_requests_total`, `chaos_cohort_errors_total` | counter | `rule`, `cohort` (`experiment`, `control`) |
//! | `chaos_cohort_duration_seconds` | histogram (`_bucket{le}`, `_sum`, `_count`) | `rule`, `cohort` |
//! | `chaos_aborts_total` | counter | `rule`, `reason` (`guard`, `service_guard`, `budget`, `manual`; `rule="*"`, `reason="kill_switch"`) |
//! | `chaos_header_rejected_total` | counter | `reason` (the stable code) |
//! | `chaos_rule_state` | gauge, 1 or 0 | `rule`, `state` (`active`, `expired`, `retired`, `killed`, `aborted`) |
//! | `chaos_kill_switch` | gauge, 1 when on | |
//! | `chaos_service_guard_state` | gauge, 1 or 0 | `state` (`none`, `holding`, `too_few_requests`, `breached`), when the rules have a service guard |
//! | `chaos_active_injections` | gauge | |
//! | `chaos_rules_version` | gauge | |
//! | `chaos_known_target` | gauge, 1 | `point`, `target`: where a rule can fire in this process |
//! | `chaos_reloads_total`, `chaos_reload_failures_total` | counter | none: rules files loaded, and refused, from the watched file (`CHAOS_RULES`) |
//! | `chaos_last_reload_success` | gauge, 1 or 0 | none: whether the watched file's last reload loaded (absent until a file is read) |
//! | `chaos_last_reload_timestamp_seconds` | gauge | none: when the watched file was last read, Unix time |
//!
//! Every series a counter may have is written from 0 (each rule's abort reasons, the kill
//! switch, every header refusal code), so `increase()` and `rate()` see the first count.
//! A rule's counters start when it is loaded and go with it when it is removed; a
//! replaced rule starts again from zero, which `rate()` and `increase()` read as a reset.

use chaos_core::{Chaos, DurationHistogram, GuardState, RuleSnapshot, RuleStatus, Snapshot};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

/// The content type of the text it writes.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The engine's figures in the Prometheus text format, as `GET /chaos/metrics` answers.
///
/// ```
/// use chaos_core::Chaos;
/// use chaos_core::rules::{Abort, Fault, Rule};
///
/// let chaos = Chaos::new();
/// chaos.add_rule(Rule::new("orders-503", "server", Fault::Abort(Abort::http(503)))).unwrap();
/// let text = chaos_tower::admin::metrics_text(&chaos);
/// assert!(text.contains(
///     r#"chaos_injections_total{rule="orders-503",fault="abort",point="server",target="*",mode="inject"} 0"#
/// ));
/// ```
pub fn metrics_text(chaos: &Chaos) -> String {
    let families = families(&chaos.snapshot());
    let mut out = Vec::new();
    // Only an empty family or one without a name fails to encode, and none is made.
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(target: "chaos", error = %e, "the Prometheus text could not be written");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A metric family being filled.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(kind);
        Family(f)
    }

    fn push(&mut self, labels: &[(&str, &str)], fill: impl FnOnce(&mut Metric)) {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).to_owned());
                    l.set_value((*v).to_owned());
                    l
                })
                .collect(),
        );
        fill(&mut m);
        self.0.mut_metric().push(m);
    }

    fn counter(&mut self, labels: &[(&str, &str)], value: u64) {
        self.push(labels, |m| {
            let mut c = Counter::default();
            c.set_value(value as f64);
            m.set_counter(c);
        });
    }

    fn gauge(&mut self, labels: &[(&str, &str)], value: f64) {
        self.push(labels, |m| {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        });
    }

    fn histogram(&mut self, labels: &[(&str, &str)], h: &DurationHistogram) {
        self.push(labels, |m| {
            let mut out = Histogram::default();
            let mut acc = 0;
            let buckets = h
                .bounds
                .iter()
                .zip(&h.counts)
                .map(|(bound, n)| {
                    acc += n;
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(acc);
                    b
                })
                .collect();
            out.set_bucket(buckets);
            // The `+Inf` bucket is the count, which the encoder writes itself.
            out.set_sample_count(h.counts.iter().sum());
            out.set_sample_sum(h.sum.as_secs_f64());
            m.set_histogram(out);
        });
    }
}

const STATES: [(RuleStatus, &str); 5] = [
    (RuleStatus::Active, "active"),
    (RuleStatus::Expired, "expired"),
    (RuleStatus::Retired, "retired"),
    (RuleStatus::Killed, "killed"),
    (RuleStatus::Aborted, "aborted"),
];

/// Why a rule stops.
const ABORT_REASONS: [&str; 4] = ["guard", "service_guard", "budget", "manual"];

const GUARD_STATES: [(GuardState, &str); 4] = [
    (GuardState::None, "none"),
    (GuardState::Holding, "holding"),
    (GuardState::TooFewRequests, "too_few_requests"),
    (GuardState::Breached, "breached"),
];

fn target(r: &RuleSnapshot) -> &str {
    r.rule.target.as_deref().unwrap_or("*")
}

fn families(s: &Snapshot) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let mut injections = Family::new(
        "chaos_injections_total",
        "Faults injected (mode=inject) or that a shadow rule would have injected (mode=shadow)",
        COUNTER,
    );
    let mut matched = Family::new(
        "chaos_matched_total",
        "Requests that met a rule's conditions",
        COUNTER,
    );
    let mut requests = Family::new(
        "chaos_cohort_requests_total",
        "Requests a rule matched, by cohort (experiment: fault applied; control: left alone)",
        COUNTER,
    );
    let mut errors = Family::new(
        "chaos_cohort_errors_total",
        "Requests a rule matched whose outcome was an error, by cohort",
        COUNTER,
    );
    let mut duration = Family::new(
        "chaos_cohort_duration_seconds",
        "Latency of the requests a rule matched, by cohort",
        HISTOGRAM,
    );
    let mut state = Family::new(
        "chaos_rule_state",
        "A rule's state: 1 for the state it is in",
        GAUGE,
    );
    for r in &s.rules {
        let id = r.rule.id.as_str();
        let (point, target) = (r.rule.point.as_str(), target(r));
        let shadow = r.rule.mode == chaos_core::rules::Mode::Shadow;
        injections.counter(
            &[
                ("rule", id),
                ("fault", r.rule.fault.kind_name()),
                ("point", point),
                ("target", target),
                ("mode", if shadow { "shadow" } else { "inject" }),
            ],
            if shadow {
                r.counters.shadowed
            } else {
                r.counters.injected
            },
        );
        matched.counter(
            &[("rule", id), ("point", point), ("target", target)],
            r.counters.matched,
        );
        for (cohort, c) in [
            ("experiment", &r.cohorts.experiment),
            ("control", &r.cohorts.control),
        ] {
            let labels = [("rule", id), ("cohort", cohort)];
            requests.counter(&labels, c.total_requests);
            errors.counter(&labels, c.total_errors);
            duration.histogram(&labels, &c.duration);
        }
        for (st, name) in STATES {
            state.gauge(
                &[("rule", id), ("state", name)],
                f64::from(u8::from(r.state == st)),
            );
        }
    }
    let mut aborts = Family::new(
        "chaos_aborts_total",
        "Rules stopped: by a guard, the service guard, an error budget, by hand, or the kill switch",
        COUNTER,
    );
    // Every series a rule may count, from 0, so `increase()` sees its first abort (a
    // counter that appears at 1 has no increase to Prometheus).
    let count = |rule: &str, reason: &str| {
        s.aborts
            .iter()
            .find(|a| a.rule == rule && a.reason == reason)
            .map_or(0, |a| a.count)
    };
    aborts.counter(
        &[("rule", "*"), ("reason", "kill_switch")],
        count("*", "kill_switch"),
    );
    for r in &s.rules {
        for reason in ABORT_REASONS {
            aborts.counter(
                &[("rule", &r.rule.id), ("reason", reason)],
                count(&r.rule.id, reason),
            );
        }
    }
    // Counts of rules no longer loaded stay while the process lives.
    for a in &s.aborts {
        let loaded = a.rule == "*" || s.rules.iter().any(|r| r.rule.id == a.rule);
        if !loaded {
            aborts.counter(&[("rule", &a.rule), ("reason", a.reason)], a.count);
        }
    }
    let mut rejected = Family::new(
        "chaos_header_rejected_total",
        "Parts of chaos headers ignored, by reason",
        COUNTER,
    );
    for r in &s.header_rejected_by_reason {
        rejected.counter(&[("reason", r.reason)], r.count);
    }
    let mut kill = Family::new(
        "chaos_kill_switch",
        "1 when the kill switch is on: nothing is injected",
        GAUGE,
    );
    kill.gauge(&[], f64::from(u8::from(s.killed)));
    let mut service = Family::new(
        "chaos_service_guard_state",
        "The service guard's state: 1 for the state it is in",
        GAUGE,
    );
    if let Some(g) = &s.service_guard {
        for (st, name) in GUARD_STATES {
            service.gauge(&[("state", name)], f64::from(u8::from(g.state == st)));
        }
    }
    let mut active = Family::new("chaos_active_injections", "Injections in flight", GAUGE);
    active.gauge(&[], f64::from(s.stats.active));
    let mut version = Family::new(
        "chaos_rules_version",
        "The version of the rules in force",
        GAUGE,
    );
    version.gauge(&[], s.version as f64);
    let mut known = Family::new(
        "chaos_known_target",
        "A point and target this process has: where a rule can fire",
        GAUGE,
    );
    for k in &s.known_targets {
        known.gauge(&[("point", &k.point), ("target", &k.target)], 1.0);
    }
    let mut reloads = Family::new(
        "chaos_reloads_total",
        "Rules files loaded from the watched file (CHAOS_RULES)",
        COUNTER,
    );
    reloads.counter(&[], s.stats.reloads);
    let mut refused = Family::new(
        "chaos_reload_failures_total",
        "Rules files refused (unreadable or invalid); the rules in force stayed",
        COUNTER,
    );
    refused.counter(&[], s.stats.reload_failures);
    let mut last_ok = Family::new(
        "chaos_last_reload_success",
        "1 when the watched file's last reload loaded, 0 when it was refused",
        GAUGE,
    );
    let mut last_at = Family::new(
        "chaos_last_reload_timestamp_seconds",
        "When the watched file was last read (Unix time)",
        GAUGE,
    );
    if let Some(r) = &s.last_reload {
        last_ok.gauge(&[], f64::from(u8::from(r.is_loaded())));
        let at =
            r.at.0
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
        last_at.gauge(&[], at.as_secs_f64());
    }
    [
        injections, matched, requests, errors, duration, aborts, rejected, state, kill, service,
        active, version, known, reloads, refused, last_ok, last_at,
    ]
    .into_iter()
    .map(|f| f.0)
    .filter(|f| !f.get_metric().is_empty())
    .collect()
}
