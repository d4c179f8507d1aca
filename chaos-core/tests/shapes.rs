//! Inputs of the wrong shape, empty inputs and YAML anchors: refused whole, with where and
//! why, in every format and by every way in (parse, one rule, the file watcher). The cost
//! of refusing an alias bomb is measured in `alias_bomb.rs`.

use chaos_core::Chaos;
use chaos_core::rules::{Format, Rule, RuleSet};

/// Every struct of the schema written as a list (serde's derive would read its fields in
/// order), or as a scalar, where a map belongs.
fn wrong_shapes() -> Vec<(Format, &'static str, &'static str)> {
    vec![
        (Format::Json, "[]", "map"),
        (Format::Json, "[1, true]", "map"),
        (Format::Yaml, "[1, true]", "map"),
        (Format::Yaml, "- 1\n- true\n", "map"),
        (Format::Json, r#"{"defaults": ["1h"]}"#, "defaults"),
        (Format::Json, r#"{"limits": [1, 2, "1s", "1s"]}"#, "limits"),
        (Format::Toml, "limits = [1, 2, \"1s\", \"1s\"]\n", "limits"),
        (
            Format::Json,
            r#"{"rules": [["a", null, "server", null, {}, {"abort": 503}]]}"#,
            "rule `#1`",
        ),
        (
            Format::Yaml,
            "rules:\n  - [a, null, server, null, {}, {abort: 503}]\n",
            "rule `#1`",
        ),
        (Format::Toml, "rules = [[\"a\", \"server\"]]\n", "rule `#1`"),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "match": ["x"], "fault": {"abort": 503}}]}"#,
            "match",
        ),
        (
            Format::Yaml,
            "rules:\n  - id: a\n    point: server\n    match: [GET]\n    fault: { abort: 503 }\n",
            "match",
        ),
        (
            Format::Toml,
            "[[rules]]\nid = \"a\"\npoint = \"server\"\nmatch = [\"GET\"]\nfault = { abort = 503 }\n",
            "match",
        ),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "fault": ["abort", 503]}]}"#,
            "fault",
        ),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "fault": {"body": ["1KiB", null, null]}}]}"#,
            "fault.body",
        ),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "fault": {"abort": 503}, "guard": ["5%", null, "30s"]}]}"#,
            "guard",
        ),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "fault": {"abort": 503}, "ramp": [["5%"], "1m"]}]}"#,
            "ramp",
        ),
        (
            Format::Json,
            r#"{"rules": [{"id": "a", "point": "server", "fault": {"abort": 503}, "match": {"headers": {"x-a": ["v", null, null, null]}}}]}"#,
            "match.headers",
        ),
    ]
}

#[test]
fn a_list_or_a_scalar_where_a_map_belongs_is_refused() {
    for (format, text, field) in wrong_shapes() {
        let err = RuleSet::parse(format, text)
            .map(|set| format!("accepted as {set:?}"))
            .expect_err(&format!("{format} {text}"));
        assert!(err.is_invalid(), "{format} {text}: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains(field),
            "{format} {text}: `{shown}` should name `{field}`"
        );
    }
}

#[test]
fn one_rule_as_a_list_is_refused() {
    for (format, text) in [
        (
            Format::Json,
            r#"["a", null, "server", null, {}, {"abort": 503}]"#,
        ),
        (Format::Yaml, "[a, null, server, null, {}, {abort: 503}]"),
        (
            Format::Json,
            r#"{"id": "a", "point": "server", "match": ["POST"], "fault": {"abort": 503}}"#,
        ),
    ] {
        let err = Rule::parse(format, text).unwrap_err();
        assert!(err.is_invalid(), "{text}: {err}");
        assert!(err.to_string().contains("map"), "{text}: {err}");
    }
}

#[test]
fn a_refused_shape_leaves_the_rules_in_force() {
    let chaos = Chaos::new();
    chaos
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules:\n  - { id: keep, point: server, fault: { abort: 503 } }\n",
            )
            .unwrap(),
        )
        .unwrap();
    assert!(RuleSet::parse(Format::Json, "[1, true]").is_err());
    assert_eq!(chaos.rules().rules[0].id, "keep");
    assert!(!chaos.is_killed());
}

#[test]
fn an_empty_document_is_refused_in_every_format() {
    for format in [Format::Json, Format::Yaml, Format::Toml] {
        for text in ["", "  \n\t\n"] {
            let err = RuleSet::parse(format, text).unwrap_err();
            assert_eq!(
                err.to_string(),
                "<string>: the document is empty; write `rules: []` to clear the rules",
                "{format} {text:?}"
            );
            assert!(Rule::parse(format, text).is_err(), "{format} {text:?}");
        }
    }
    // Clearing the rules stays possible, said explicitly.
    assert!(
        RuleSet::parse(Format::Json, r#"{"version": 1, "rules": []}"#)
            .unwrap()
            .rules
            .is_empty()
    );
    assert!(
        RuleSet::parse(Format::Yaml, "rules: []")
            .unwrap()
            .rules
            .is_empty()
    );
    assert!(
        RuleSet::parse(Format::Toml, "rules = []")
            .unwrap()
            .rules
            .is_empty()
    );
}

#[test]
fn a_document_of_only_comments_is_refused() {
    for format in [Format::Yaml, Format::Toml] {
        let err = RuleSet::parse(format, "# nothing here\n---\n").unwrap_err();
        assert!(
            err.to_string().contains("the document is empty"),
            "{format}: {err}"
        );
    }
}

#[test]
fn anchors_of_an_ordinary_size_still_work() {
    let text = "\
shared: &tagged { scenario: gameday-7 }
rules:
  - { id: a, point: server, match: *tagged, fault: { abort: 503 } }
  - { id: b, point: client, match: *tagged, fault: { delay: 1s } }
";
    // `shared` is not a field of the schema: anchors live on a field of their own only
    // where the schema allows it, so write them inline instead.
    assert!(RuleSet::parse(Format::Yaml, text).is_err());
    let inline = "\
rules:
  - { id: a, point: server, match: &tagged { scenario: gameday-7 }, fault: { abort: 503 } }
  - { id: b, point: client, match: *tagged, fault: { delay: 1s } }
";
    let set = RuleSet::parse(Format::Yaml, inline).unwrap();
    assert_eq!(set.rules[1].matcher.scenario.as_deref(), Some("gameday-7"));
}

#[test]
fn a_document_above_the_size_limit_is_refused_before_parsing() {
    let big = format!(
        "rules: []\n# {}\n",
        "x".repeat(chaos_core::rules::MAX_DOCUMENT_BYTES)
    );
    let err = RuleSet::parse(Format::Yaml, &big).unwrap_err();
    assert!(err.to_string().contains("above the limit"), "{err}");
}

#[test]
fn the_file_watcher_refuses_the_same_inputs() {
    use chaos_core::reload::WatchOptions;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(
        &path,
        r#"{"rules": [{"id": "keep", "point": "server", "fault": {"abort": 503}}]}"#,
    )
    .unwrap();
    let chaos = Chaos::new();
    let opts = WatchOptions::default()
        .debounce(Duration::from_millis(20))
        .recheck(Duration::from_millis(100));
    let watch = chaos.watch_file_with(&path, opts).unwrap();
    assert_eq!(watch.reloads(), 1);
    for bad in ["[1, true]", "", "[]", "  \n"] {
        let before = watch.failures();
        std::fs::write(&path, bad).unwrap();
        // The watcher (events, or its periodic re-check) refuses it, and says so. A write
        // seen half-way (empty) is refused too, so count "more", not "one more".
        let deadline = Instant::now() + Duration::from_secs(10);
        while watch.failures() == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(watch.failures() > before, "{bad:?} was not refused");
        assert!(watch.last_error().is_some(), "{bad:?}");
        assert_eq!(chaos.rules().rules[0].id, "keep", "{bad:?}");
        assert!(!chaos.is_killed(), "{bad:?}");
        // The same file read once is refused the same way.
        assert!(chaos.load_file(&path).is_err(), "{bad:?}");
    }
}
