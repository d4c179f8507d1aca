//! One tracing event per injection (target `chaos`, fields rule, fault, point, target), and
//! warnings for rejected headers that are rate-limited.

mod support;

use chaos_core::rules::{Abort, Fault, Rule};
use chaos_core::{Chaos, Point, RequestView};
use http::{HeaderMap, HeaderValue};

fn captured(f: impl FnOnce()) -> String {
    let logs = support::Logs::capture();
    f();
    logs.text()
}

#[test]
fn one_event_per_injection_with_its_fields() {
    let chaos = Chaos::new();
    chaos
        .add_rule(
            Rule::new("orders-503", "client", Fault::Abort(Abort::http(503))).with_target("orders"),
        )
        .unwrap();
    let log = captured(|| {
        for _ in 0..3 {
            assert!(
                chaos
                    .decide(&RequestView::new(Point::Client, "orders"))
                    .is_inject()
            );
        }
        assert!(
            !chaos
                .decide(&RequestView::new(Point::Client, "billing"))
                .is_inject()
        );
    });
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fault injected"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    for l in lines {
        assert!(l.contains(" chaos: "), "target chaos: {l}");
        for field in [
            "rule=orders-503",
            "fault=abort 503",
            "point=client",
            "target=orders",
        ] {
            assert!(l.contains(field), "{field} missing in: {l}");
        }
    }
}

#[test]
fn rejected_header_warnings_are_rate_limited_but_all_counted() {
    let chaos = Chaos::new();
    let mut h = HeaderMap::new();
    h.insert("x-chaos", HeaderValue::from_static("explode=1"));
    let log = captured(|| {
        for _ in 0..500 {
            let _ = chaos.context_from_headers(&h);
        }
    });
    let warnings = log
        .lines()
        .filter(|l| l.contains("ignored part of a chaos header"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(log.contains("unknown key `explode`"), "{log}");
    assert_eq!(chaos.snapshot().stats.header_rejected, 500);
}
