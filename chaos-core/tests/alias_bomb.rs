//! The cost of refusing a YAML alias bomb, measured with a counting allocator. In a test
//! binary of its own: the allocator counts every thread of the process, so a test running
//! beside it would be counted too.

use std::alloc::System;

use chaos_core::rules::{Format, RuleSet};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// An anchor of about 200 KB referenced 20 000 times: a 260 KB document that would expand
/// to gigabytes. The anchor sits on a field of the schema, so parsing reaches the aliases.
fn alias_bomb() -> String {
    let anchor = vec!["GETGETGETGETGETGETGE"; 10_000].join(", ");
    let refs = vec!["*a"; 20_000].join(", ");
    format!(
        "rules:\n  - id: a\n    point: server\n    fault: {{ abort: 503 }}\n    match: {{ method: &a [{anchor}] }}\n  - id: b\n    point: server\n    fault: {{ abort: 503 }}\n    match: {{ method: [{refs}] }}\n"
    )
}

#[test]
fn a_yaml_alias_bomb_is_refused_at_a_bounded_cost() {
    let bomb = alias_bomb();
    let region = Region::new(GLOBAL);
    let err = RuleSet::parse(Format::Yaml, &bomb).unwrap_err();
    let stats = region.change();
    eprintln!(
        "refusing the bomb allocated {} KiB: {err}",
        stats.bytes_allocated >> 10
    );
    assert!(err.is_invalid() || err.is_syntax(), "{err}");
    // The document itself is 260 KB; its refusal may cost a few times that, not the
    // hundreds of MiB an expansion would.
    assert!(
        stats.bytes_allocated < 12 << 20,
        "refusing the bomb allocated {} MiB",
        stats.bytes_allocated >> 20
    );
}
