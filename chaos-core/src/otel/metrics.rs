//! The engine's instruments, and each rule's attribute sets.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{InstrumentationScope, KeyValue};

use super::{
    ABORTS, COHORT_DURATION, COHORT_ERRORS, COHORT_REQUESTS, HEADER_REJECTED, INJECTED_DELAY,
    INJECTIONS,
};
use crate::outcome::SECONDS;
use crate::rules::{Fault, Mode, Rule};

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
                m.injections.add(1, &a.injection);
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
}

impl crate::context::inbound::CountRefusals for Metrics {
    /// A part of a chaos header ignored, for `reason` (a stable code).
    #[cold]
    fn header_rejected(&self, reason: &'static str) {
        self.get()
            .header_rejected
            .add(1, &[KeyValue::new("reason", reason)]);
    }
}

/// A rule's attribute sets, built when it is loaded.
pub(crate) struct RuleAttrs {
    /// For `chaos.injections`: its mode is the rule's (a shadow rule's decisions are its
    /// only "injections", an inject rule never decides in shadow).
    injection: [KeyValue; 5],
    delay: [KeyValue; 3],
    experiment: [KeyValue; 2],
    control: [KeyValue; 2],
}

impl RuleAttrs {
    pub(crate) fn new(rule: &Rule) -> Arc<RuleAttrs> {
        let id = KeyValue::new("rule", rule.id.clone());
        let point = KeyValue::new("point", rule.point.clone());
        let target = KeyValue::new("target", rule.target.clone().unwrap_or_else(|| "*".into()));
        let mode = match rule.mode {
            Mode::Inject => "inject",
            Mode::Shadow => "shadow",
        };
        Arc::new(RuleAttrs {
            injection: [
                id.clone(),
                KeyValue::new("fault", rule.fault.kind_name()),
                point.clone(),
                target.clone(),
                KeyValue::new("mode", mode),
            ],
            delay: [id.clone(), point, target],
            experiment: [id.clone(), KeyValue::new("cohort", "experiment")],
            control: [id, KeyValue::new("cohort", "control")],
        })
    }
}
