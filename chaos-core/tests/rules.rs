//! The rules schema: the reference file in three formats, and refused inputs with their
//! exact messages.

use chaos_core::rules::{Delay, Fault, Format, RuleSet, Step};
use std::time::Duration;

fn reference(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn reference_parses_in_all_three_formats_to_the_same_rules() {
    let yaml = RuleSet::parse(Format::Yaml, &reference("reference.yaml")).unwrap();
    let json = RuleSet::parse(Format::Json, &reference("reference.json")).unwrap();
    let toml = RuleSet::parse(Format::Toml, &reference("reference.toml")).unwrap();
    assert_eq!(yaml, json);
    assert_eq!(yaml, toml);
    assert_eq!(yaml.rules.len(), 6);
    let first = &yaml.rules[0];
    assert_eq!(first.id, "payments-slow");
    assert_eq!(first.target.as_deref(), Some("payments"));
    assert_eq!(
        first.matcher.host.as_ref().map(|h| h.as_str()),
        Some("*.internal")
    );
    assert_eq!(
        first.fault,
        Fault::Delay(Delay::Range(
            Duration::from_millis(300),
            Duration::from_millis(800)
        ))
    );
    assert_eq!(first.rate.fraction(), 0.25);
    assert_eq!(
        yaml.rules[1].sequence.as_deref(),
        Some(&[Step::Inject, Step::Inject, Step::Pass][..])
    );
    assert_eq!(yaml.limits.max_items, 16);
}

#[test]
fn serialized_rules_parse_back_equal_in_every_format() {
    let set = RuleSet::parse(Format::Yaml, &reference("reference.yaml")).unwrap();
    for f in [Format::Json, Format::Toml, Format::Yaml] {
        let text = set.to_string(f).unwrap();
        let back = RuleSet::parse(f, &text).unwrap_or_else(|e| panic!("{f}: {e}\n{text}"));
        assert_eq!(back, set, "{f}");
    }
}

#[test]
fn from_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rules.yaml");
    std::fs::write(
        &p,
        "rules:\n  - id: a\n    point: server\n    fault: { delay: 1s }\n    rate: 125%\n",
    )
    .unwrap();
    let e = RuleSet::from_file(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:11: rule `a`, field `rate`: rate 125% is above 100%",
            p.display()
        )
    );
    assert_eq!(
        (e.line(), e.column(), e.rule_id(), e.field()),
        (Some(5), Some(11), Some("a"), Some("rate"))
    );
    assert!(e.is_invalid());

    let missing = RuleSet::from_file(dir.path().join("nope.yaml")).unwrap_err();
    assert!(missing.is_io());
    assert!(
        missing.to_string().contains("nope.yaml: cannot read"),
        "{missing}"
    );
    let ext = RuleSet::from_file(dir.path().join("rules.ini")).unwrap_err();
    assert!(
        ext.to_string()
            .ends_with("unknown rules format, expected a .json, .toml, .yaml or .yml file"),
        "{ext}"
    );
}

/// A rule body in YAML with one extra line, at line 5 of the document.
fn rule_with(extra: &str) -> String {
    format!("rules:\n  - id: r1\n    point: server\n    fault: {{ delay: 1s }}\n    {extra}\n")
}

fn rule_with_fault(fault: &str) -> String {
    format!("rules:\n  - id: r1\n    point: server\n    fault: {fault}\n")
}

#[test]
fn refused_inputs_say_where_what_and_why() {
    let unknown_rule_field = "unknown field `rat`, expected one of id, description, point, target, match, fault, \
                              sequence, first, every, rate, sticky_by, max_active, max_hits, ttl, expires_at, guard, max_errors, ramp, mode";
    let cases: Vec<(Format, String, String)> = vec![
        // --- schema errors, with positions
        (Format::Yaml, rule_with("rat: 5%"), format!("<string>:5:5: rule `r1`, field `rat`: {unknown_rule_field}")),
        (Format::Yaml, rule_with("rate: 125%"), "<string>:5:11: rule `r1`, field `rate`: rate 125% is above 100%".into()),
        (Format::Yaml, rule_with("rate: 1.5"), "<string>:5:11: rule `r1`, field `rate`: rate 1.5 is above 1: a bare number is a fraction from 0 to 1; write `25%` or `0.25`".into()),
        // A bare number meant as a percentage: said so, not read as 15000%.
        (Format::Yaml, rule_with("rate: 150"), "<string>:5:11: rule `r1`, field `rate`: rate 150 is above 1: a bare number is a fraction from 0 to 1; write `25%` or `0.25`".into()),
        (Format::Yaml, rule_with("rate: 150%"), "<string>:5:11: rule `r1`, field `rate`: rate 150% is above 100%".into()),
        (Format::Yaml, rule_with("rate: -5%"), "<string>:5:11: rule `r1`, field `rate`: rate -5% is below 0%".into()),
        (Format::Yaml, rule_with("rate: lots"), "<string>:5:11: rule `r1`, field `rate`: invalid rate `lots`: expected `25%` or `0.25`".into()),
        (Format::Yaml, rule_with_fault("{ delay: 800ms..300ms }"), "<string>:4:21: rule `r1`, field `fault.delay`: delay range 800ms..300ms is reversed".into()),
        (Format::Yaml, rule_with_fault("{ delay: 3x }"), "<string>:4:21: rule `r1`, field `fault.delay`: invalid duration `3x`: unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)".into()),
        (Format::Yaml, rule_with_fault("{ delay: { p50: 900ms, p99: 80ms } }"), "<string>:4:21: rule `r1`, field `fault.delay`: delay p99 80ms is below p50 900ms".into()),
        (Format::Yaml, rule_with_fault("{ delay: 1s, abort: 503 }"), "<string>:4:12: rule `r1`, field `fault`: a rule has exactly one fault, found `delay` and `abort`".into()),
        (Format::Yaml, rule_with_fault("{}"), "<string>:4:12: rule `r1`, field `fault`: fault is empty, expected one of `delay`, `abort`, `drop`, `error`, `body`".into()),
        (Format::Yaml, rule_with_fault("{ explode: true }"), "<string>:4:14: rule `r1`, field `fault`: unknown field `explode`, expected one of delay, abort, drop, error, body".into()),
        (Format::Yaml, rule_with_fault("{ abort: 700 }"), "<string>:4:21: rule `r1`, field `fault.abort`: abort status 700 is outside 200..=599".into()),
        (Format::Yaml, rule_with_fault("{ abort: \"grpc:0\" }"), "<string>:4:21: rule `r1`, field `fault.abort`: gRPC code 0 is OK, not a fault".into()),
        (Format::Yaml, rule_with_fault("{ abort: \"grpc:99\" }"), "<string>:4:21: rule `r1`, field `fault.abort`: gRPC code 99 is outside 1..=16".into()),
        (Format::Yaml, rule_with_fault("{ abort: { status: 503, grpc: 14 } }"), "<string>:4:21: rule `r1`, field `fault.abort`: abort has both `status` and `grpc`".into()),
        (Format::Yaml, rule_with_fault("{ abort: { body: x } }"), "<string>:4:21: rule `r1`, field `fault.abort`: abort needs `status` or `grpc`".into()),
        (Format::Yaml, rule_with_fault("{ drop: explode }"), "<string>:4:20: rule `r1`, field `fault.drop`: unknown drop `explode`, expected `reset` or `hang`".into()),
        (Format::Yaml, rule_with_fault("{ error: boom }"), "<string>:4:21: rule `r1`, field `fault.error`: unknown error kind `boom`, expected one of `unavailable`, `timeout`, `sqlstate:CODE`".into()),
        (Format::Yaml, rule_with_fault("{ error: \"sqlstate:4001\" }"), "<string>:4:21: rule `r1`, field `fault.error`: invalid SQLSTATE `4001`, expected 5 digits or capital letters".into()),
        (Format::Yaml, rule_with_fault("{ body: { truncate_after: 1KiB, stall_after: 2KiB } }"), "<string>:4:20: rule `r1`, field `fault.body`: a body fault has exactly one of `truncate_after`, `stall_after`, `bytes_per_sec`".into()),
        (Format::Yaml, rule_with_fault("{ body: { bytes_per_sec: 0 } }"), "<string>:4:20: rule `r1`, field `fault.body`: bytes_per_sec must be above 0".into()),
        (Format::Yaml, "rules:\n  - id: Bad Id\n    point: server\n    fault: { delay: 1s }\n".into(), "<string>:2:9: rule `Bad Id`, field `id`: rule id `Bad Id` may only hold lowercase letters, digits, `-`, `_` and `.`".into()),
        (Format::Yaml, "rules:\n  - id: r1\n    point: Server!\n    fault: { delay: 1s }\n".into(), "<string>:3:12: rule `r1`, field `point`: point `Server!` must be `server`, `client`, `sql` or a lowercase name".into()),
        (Format::Yaml, "rules:\n  - id: r1\n    fault: { delay: 1s }\n".into(), "<string>:3:5: rule `r1`: missing field `point`".into()),
        (Format::Yaml, rule_with("sticky_by: \"bad header\""), "<string>:5:16: rule `r1`, field `sticky_by`: sticky_by `bad header` is neither a header name nor `scenario`".into()),
        (Format::Yaml, rule_with("match: { method: \"GET POST\" }"), "<string>:5:22: rule `r1`, field `match.method`: invalid HTTP method `GET POST`".into()),
        (Format::Yaml, rule_with("match: { headers: { x-a: { present: false } } }"), "<string>:5:30: rule `r1`, field `match.headers.x-a`: a header condition has exactly one of `exact`, `glob`, `present: true`, `absent: true`".into()),
        (Format::Yaml, rule_with("ttl: soon"), "<string>:5:10: rule `r1`, field `ttl`: invalid duration `soon`: expected number at 0".into()),
        (Format::Yaml, rule_with("expires_at: tomorrow"), "<string>:5:17: rule `r1`, field `expires_at`: invalid time `tomorrow`: timestamp format is invalid".into()),
        (Format::Yaml, rule_with("mode: loud"), "<string>:5:11: rule `r1`, field `mode`: unknown variant `loud`, expected one of inject, shadow".into()),
        (Format::Yaml, rule_with("sequence: [abort, maybe]"), "<string>:5:23: rule `r1`, field `sequence[1]`: unknown sequence step `maybe`, expected `pass`, `inject` or the fault's kind".into()),
        (Format::Yaml, "version: 2\nrules: []\n".into(), "<string>:1:10: field `version`: unsupported rules version 2, expected 1".into()),
        (Format::Yaml, "rulez: []\n".into(), "<string>:1:1: field `rulez`: unknown field `rulez`, expected one of version, kill_switch, allow_directives, defaults, max_active, limits, guard, rules".into()),
        // --- validation across fields (no position: the format cannot give one)
        (Format::Yaml, "rules:\n  - { id: payments-slow, point: server, fault: { delay: 1s } }\n  - { id: payments-slow, point: client, fault: { delay: 1s } }\n".into(), "<string>: rule `payments-slow`, field `id`: duplicate rule id `payments-slow`".into()),
        (Format::Yaml, rule_with_fault("{ delay: 2m }"), "<string>: rule `r1`, field `fault.delay`: delay 2m is above the ceiling 30s (limits.max_delay)".into()),
        (Format::Yaml, rule_with("first: 2\n    every: 3"), "<string>: rule `r1`, field `sequence`: give only one of `sequence`, `first`, `every`".into()),
        (Format::Yaml, rule_with("every: 0"), "<string>: rule `r1`, field `every`: every 0 is not a period; use 1 or more".into()),
        (Format::Yaml, rule_with("sequence: []"), "<string>: rule `r1`, field `sequence`: sequence is empty".into()),
        (Format::Yaml, rule_with("ttl: 1h\n    expires_at: 2099-01-01T00:00:00Z"), "<string>: rule `r1`, field `ttl`: give `ttl` or `expires_at`, not both".into()),
        (Format::Yaml, rule_with("max_active: 0"), "<string>: rule `r1`, field `max_active`: max_active 0 would never inject".into()),
        (Format::Yaml, rule_with("guard: { window: 10s }"), "<string>: rule `r1`, field `guard`: a guard needs `error_rate_above`, `p99_above` or `vs_control`".into()),
        (Format::Yaml, rule_with("ramp: { steps: [25%, 5%], every: 1m }"), "<string>: rule `r1`, field `ramp.steps`: ramp steps must not go down".into()),
        (Format::Yaml, rule_with("match: { sql: \"UPDATE*\" }"), "<string>: rule `r1`, field `match.sql`: `match.sql` applies at the `sql` point, not `server`".into()),
        (Format::Yaml, rule_with("match: { scenario: \"two words\" }"), "<string>: rule `r1`, field `match.scenario`: scenario `two words` may only hold letters, digits, `.`, `_` and `-`".into()),
        // --- JSON and TOML positions
        (Format::Json, "{\"rules\":[{\"id\":\"a\",\"point\":\"server\",\"fault\":{\"delay\":\"1s\"},\"rate\":\"125%\"}]}".into(), "<string>:1:73: rule `a`, field `rate`: rate 125% is above 100%".into()),
        (Format::Json, "{\"rules\": [".into(), "<string>:1:11: field `rules`: EOF while parsing a list".into()),
        (Format::Json, "{\"rules\": []} trailing".into(), "<string>:1:15: trailing characters".into()),
        (Format::Toml, "[[rules]]\nid = \"a\"\npoint = \"server\"\nrate = \"125%\"\nfault = { delay = \"1s\" }\n".into(), "<string>:4:8: rule `a`, field `rate`: rate 125% is above 100%".into()),
        (Format::Toml, "[[rules]]\nid = \"a\"\npoint = \"server\"\nfault = { abort = 700 }\n".into(), "<string>:4:19: rule `a`, field `fault.abort`: abort status 700 is outside 200..=599".into()),
        (Format::Toml, "rules = [\n".into(), "<string>:1:10: unclosed array, expected `]`".into()),
        (Format::Yaml, "rules: [\n".into(), "<string>:1:8: field `rules`: unclosed bracket '['".into()),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (format, input, want) in &cases {
        match RuleSet::parse(*format, input) {
            Ok(_) => failures.push(format!("accepted:\n{input}")),
            Err(e) if e.to_string() != *want => {
                failures.push(format!("input:\n{input}\n  got: {e}\n want: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn shorthands_and_defaults() {
    let set = RuleSet::parse(
        Format::Yaml,
        "rules:\n  - id: a\n    point: sql\n    match: { sql: \"update ORDERS*\", method: get }\n    fault: { abort: 503 }\n    rate: 0.5\n",
    )
    .unwrap();
    let r = &set.rules[0];
    assert_eq!(r.matcher.method, [http::Method::GET]);
    assert!(
        r.matcher
            .sql
            .as_ref()
            .unwrap()
            .matches("UPDATE orders SET paid = true")
    );
    assert_eq!(r.rate.to_string(), "50%");
    assert!(!set.kill_switch && !set.allow_directives);
    assert_eq!(set.version, 1);
}

/// Found by the fuzz run (`chaos-core/fuzz/regressions/rules-*`): a written document must
/// load back as the same rules, whatever the rate's digits or the text in a header.
#[test]
fn awkward_rates_and_non_ascii_header_text_survive_a_write_and_a_load() {
    let doc = r#"
rules:
  - id: a
    point: server
    rate: 0.011
    fault: { abort: { status: 503, content_type: "application/jsoné", headers: { x-note: "café" } } }
  - id: b
    point: server
    rate: 33.333%
    fault: { abort: 502 }
"#;
    let set = RuleSet::parse(Format::Yaml, doc).unwrap();
    for format in [Format::Yaml, Format::Json, Format::Toml] {
        let text = set.to_string(format).unwrap();
        assert!(text.contains("jsoné") && text.contains("café"), "{text}");
        assert_eq!(RuleSet::parse(format, &text).unwrap(), set, "{text}");
    }
    // A rate that is exact as a percentage is still written as one.
    let one = RuleSet::parse(
        Format::Yaml,
        "rules: [{ id: c, point: server, rate: 25%, fault: { abort: 503 } }]",
    )
    .unwrap();
    assert!(one.to_string(Format::Yaml).unwrap().contains("rate: 25%"));
}
