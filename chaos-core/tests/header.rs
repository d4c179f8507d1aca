//! The `x-chaos` / `x-test-traffic` grammar: table-driven cases and properties.

use chaos_core::context::{Directive, XChaos, parse_test_traffic};
use chaos_core::rules::{Abort, Delay, DropKind, ErrorKind, Fault, Limits, Rate};
use proptest::prelude::*;
use std::time::Duration;

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn accepted_headers() {
    let ms = Duration::from_millis;
    let cases: Vec<(&str, XChaos)> = vec![
        ("scenario=gameday-7", x(&["gameday-7"], vec![])),
        ("  scenario=a ,scenario=b  ", x(&["a", "b"], vec![])),
        (
            "delay=250ms",
            x(
                &[],
                vec![Directive::new(Fault::Delay(Delay::Fixed(ms(250))))],
            ),
        ),
        (
            "delay=100ms..400ms;rate=25%",
            x(
                &[],
                vec![
                    Directive::new(Fault::Delay(Delay::Range(ms(100), ms(400))))
                        .rate(Rate::new(0.25).unwrap()),
                ],
            ),
        ),
        (
            "abort=503;point=server;target=orders;hops=2",
            x(
                &[],
                vec![
                    Directive::new(Fault::Abort(Abort::http(503)))
                        .at("server")
                        .target("orders")
                        .hops(2),
                ],
            ),
        ),
        (
            "abort=grpc:14",
            x(
                &[],
                vec![Directive::new(Fault::Abort("grpc:14".parse().unwrap()))],
            ),
        ),
        (
            "drop=reset;point=client",
            x(
                &[],
                vec![Directive::new(Fault::Drop(DropKind::Reset)).at("client")],
            ),
        ),
        (
            "drop=hang",
            x(&[], vec![Directive::new(Fault::Drop(DropKind::Hang))]),
        ),
        (
            "error=sqlstate:40001;point=sql;target=orders-db",
            x(
                &[],
                vec![
                    Directive::new(Fault::Error("sqlstate:40001".parse().unwrap()))
                        .at("sql")
                        .target("orders-db"),
                ],
            ),
        ),
        (
            "error=unavailable;point=queue.publish",
            x(
                &[],
                vec![Directive::new(Fault::Error(ErrorKind::Unavailable)).at("queue.publish")],
            ),
        ),
        (
            "scenario=gameday-7, delay=300ms;point=client;target=payments;rate=50%, abort=503;point=sql",
            x(
                &["gameday-7"],
                vec![
                    Directive::new(Fault::Delay(Delay::Fixed(ms(300))))
                        .at("client")
                        .target("payments")
                        .rate(Rate::new(0.5).unwrap()),
                    Directive::new(Fault::Abort(Abort::http(503))).at("sql"),
                ],
            ),
        ),
        ("", XChaos::default()),
    ];
    for (input, want) in cases {
        assert_eq!(
            XChaos::parse(input, &limits()).unwrap_or_else(|e| panic!("{input}: {e}")),
            want,
            "{input}"
        );
    }
}

fn x(scenarios: &[&str], directives: Vec<Directive>) -> XChaos {
    let mut v = XChaos::default();
    v.scenarios = scenarios.iter().map(|s| s.to_string()).collect();
    v.directives = directives;
    v
}

#[test]
fn refused_items_with_exact_reasons() {
    let cases = [
        ("scenario", "`scenario`: expected `key=value`", "syntax"),
        (
            "scenario=",
            "`scenario=`: `scenario` has no value",
            "syntax",
        ),
        (
            "scenario=a b",
            "`scenario=a b`: scenario `a b` may only hold letters, digits, `.`, `_` and `-`",
            "bad_value",
        ),
        (
            "scenario=s;rate=5%",
            "`scenario=s;rate=5%`: `scenario` takes no params",
            "bad_param",
        ),
        (
            "explode=1",
            "`explode=1`: unknown key `explode`, expected one of `scenario`, `delay`, `abort`, `drop`, `error`",
            "unknown_key",
        ),
        (
            "delay=3x",
            "`delay=3x`: invalid duration `3x`: unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)",
            "bad_value",
        ),
        (
            "delay=400ms..100ms",
            "`delay=400ms..100ms`: delay range 400ms..100ms is reversed",
            "bad_value",
        ),
        (
            "delay=1h",
            "`delay=1h`: delay 1h is above the ceiling 30s (limits.max_delay)",
            "above_ceiling",
        ),
        (
            "abort=99",
            "`abort=99`: abort status 99 is outside 200..=599",
            "bad_value",
        ),
        (
            "abort=grpc:0",
            "`abort=grpc:0`: gRPC code 0 is OK, not a fault",
            "bad_value",
        ),
        (
            "abort=teapot",
            "`abort=teapot`: invalid abort `teapot`, expected an HTTP status or `grpc:CODE`",
            "bad_value",
        ),
        (
            "drop=now",
            "`drop=now`: unknown drop `now`, expected `reset` or `hang`",
            "bad_value",
        ),
        (
            "error=boom",
            "`error=boom`: unknown error kind `boom`, expected one of `unavailable`, `timeout`, `sqlstate:CODE`",
            "bad_value",
        ),
        (
            "delay=1s;rate=150%",
            "`delay=1s;rate=150%`: rate 150% is above 100%",
            "bad_param",
        ),
        (
            "delay=1s;hops=x",
            "`delay=1s;hops=x`: hops `x` is not a whole number",
            "bad_param",
        ),
        (
            "delay=1s;hops=0",
            "`delay=1s;hops=0`: hops 0 reaches no service",
            "bad_param",
        ),
        (
            "delay=1s;colour=red",
            "`delay=1s;colour=red`: unknown param `colour`, expected one of `point`, `target`, `rate`, `hops`",
            "bad_param",
        ),
        (
            "delay=1s;point=sql;point=client",
            "`delay=1s;point=sql;point=client`: param `point` is given twice",
            "bad_param",
        ),
        (
            "delay=1s;target",
            "`delay=1s;target`: param `target` is not `name=value`",
            "bad_param",
        ),
        (
            "delay=1s;target=a/b",
            "`delay=1s;target=a/b`: `target` `a/b` may only hold letters, digits, `.`, `_` and `-`",
            "bad_param",
        ),
        ("scenario=a,,scenario=b", "empty item", "syntax"),
    ];
    for (input, want, code) in cases {
        let e = XChaos::parse(input, &limits()).expect_err(input);
        assert_eq!(e.to_string(), want, "{input}");
        assert_eq!(e.code(), code, "{input}");
    }
}

#[test]
fn lenient_parsing_keeps_the_good_items() {
    let (v, errors) = XChaos::parse_lossy(
        b"scenario=ok, explode=1, delay=3x, scenario=also-ok",
        &limits(),
    );
    assert_eq!(v.scenarios, ["ok", "also-ok"]);
    assert_eq!(errors.len(), 2);
}

#[test]
fn limits_on_length_and_items() {
    let mut l = limits();
    l.max_header_bytes = 32;
    let long = "scenario=".to_owned() + &"a".repeat(40);
    let (v, errors) = XChaos::parse_lossy(long.as_bytes(), &l);
    assert!(v.is_empty());
    assert_eq!(errors[0].code(), "too_long");
    assert_eq!(
        errors[0].to_string(),
        "x-chaos is 49 bytes, above the limit of 32 (limits.max_header_bytes)"
    );

    let mut l = limits();
    l.max_items = 2;
    let (v, errors) = XChaos::parse_lossy(b"scenario=a, scenario=b, scenario=c, scenario=d", &l);
    assert_eq!(v.scenarios, ["a", "b"]);
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].code(), "too_many_items");

    let (_, errors) = XChaos::parse_lossy("scenario=é".as_bytes(), &limits());
    assert_eq!(errors[0].code(), "not_ascii");
}

#[test]
fn test_traffic_values() {
    for yes in ["1", "true", "TRUE", " True "] {
        assert_eq!(parse_test_traffic(yes.as_bytes()), Ok(true), "{yes}");
    }
    for no in ["0", "false"] {
        assert_eq!(parse_test_traffic(no.as_bytes()), Ok(false), "{no}");
    }
    let e = parse_test_traffic(b"yes").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`yes`: x-test-traffic must be `1`, `true`, `0` or `false`"
    );
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,20}"
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0u64..30_000).prop_map(|ms| Fault::Delay(Delay::Fixed(Duration::from_millis(ms)))),
        (0u64..10_000, 0u64..10_000).prop_map(|(a, b)| Fault::Delay(Delay::Range(
            Duration::from_millis(a.min(b)),
            Duration::from_millis(a.max(b))
        ))),
        (200u16..600).prop_map(|s| Fault::Abort(Abort::http(s))),
        (1u8..=16).prop_map(|c| Fault::Abort(format!("grpc:{c}").parse().unwrap())),
        prop_oneof![Just(DropKind::Reset), Just(DropKind::Hang)].prop_map(Fault::Drop),
        prop_oneof![
            Just("unavailable"),
            Just("timeout"),
            Just("sqlstate:40001"),
            Just("sqlstate:57014")
        ]
        .prop_map(|e| Fault::Error(e.parse().unwrap())),
    ]
}

fn directive() -> impl Strategy<Value = Directive> {
    (
        fault(),
        proptest::option::of(name()),
        proptest::option::of(name()),
        0u32..=100,
        proptest::option::of(1u32..10),
    )
        .prop_map(|(f, point, target, pct, hops)| {
            let mut d = Directive::new(f).rate(Rate::new(f64::from(pct) / 100.0).unwrap());
            d.point = point;
            d.target = target;
            d.hops = hops;
            d
        })
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = XChaos::parse_lossy(&bytes, &limits());
        let _ = parse_test_traffic(&bytes);
    }

    #[test]
    fn parser_never_panics_on_near_miss_text(s in "[a-z=;,.:% 0-9*-]{0,120}") {
        let _ = XChaos::parse(&s, &limits());
    }

    #[test]
    fn format_then_parse_round_trips(
        scenarios in proptest::collection::vec("[A-Za-z0-9._-]{1,20}", 0..4),
        directives in proptest::collection::vec(directive(), 0..5),
    ) {
        let mut v = XChaos::default();
        v.scenarios = scenarios;
        v.directives = directives;
        let text = v.to_string();
        let back = XChaos::parse(&text, &limits()).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, v);
    }
}
