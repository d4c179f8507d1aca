//! Expiry across reloads: what `defaults.ttl` means for rules that are loaded again.

use std::time::Duration;

use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, Point, RequestView};

fn doc(default_ttl: &str) -> RuleSet {
    RuleSet::parse(
        Format::Yaml,
        &format!(
            "defaults: {{ ttl: {default_ttl} }}\nrules:\n  - {{ id: inherits, point: server, target: a, fault: {{ abort: 503 }} }}\n  - {{ id: own, point: server, target: b, fault: {{ abort: 503 }}, ttl: 2h }}\n"
        ),
    )
    .unwrap()
}

fn rule(chaos: &Chaos, id: &str) -> chaos_core::RuleSnapshot {
    chaos
        .snapshot()
        .rules
        .into_iter()
        .find(|r| r.rule.id == id)
        .unwrap()
}

fn expires_in(chaos: &Chaos, id: &str) -> Duration {
    rule(chaos, id).expires_in.unwrap().0
}

fn injected(chaos: &Chaos, id: &str) -> u64 {
    rule(chaos, id).counters.injected
}

#[tokio::test(start_paused = true)]
async fn a_changed_default_ttl_reaches_the_rules_that_take_it() {
    let chaos = Chaos::new();
    chaos.replace(doc("10m")).unwrap();
    let _ = chaos.decide(&RequestView::new(Point::Server, "a"));
    let _ = chaos.decide(&RequestView::new(Point::Server, "b"));
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(expires_in(&chaos, "inherits"), Duration::from_secs(300));

    // The same document again: nothing changed, nothing restarts.
    chaos.replace(doc("10m")).unwrap();
    assert_eq!(expires_in(&chaos, "inherits"), Duration::from_secs(300));
    assert_eq!(injected(&chaos, "inherits"), 1);

    // defaults.ttl raised to 1h: the rule that takes it now lives 1h from this load, as it
    // would had its own ttl changed. It used to keep the 5 minutes it had left.
    chaos.replace(doc("1h")).unwrap();
    assert_eq!(expires_in(&chaos, "inherits"), Duration::from_secs(3600));
    assert_eq!(
        injected(&chaos, "inherits"),
        0,
        "a changed rule starts afresh"
    );

    // A rule with a ttl of its own is not touched by defaults.
    assert_eq!(expires_in(&chaos, "own"), Duration::from_secs(7200 - 300));
    assert_eq!(injected(&chaos, "own"), 1);

    // Lowered again, below the time already spent: counted from this load, not expired.
    tokio::time::advance(Duration::from_secs(1200)).await;
    chaos.replace(doc("15m")).unwrap();
    assert_eq!(expires_in(&chaos, "inherits"), Duration::from_secs(900));
    assert!(
        chaos
            .decide(&RequestView::new(Point::Server, "a"))
            .is_inject()
    );
}
