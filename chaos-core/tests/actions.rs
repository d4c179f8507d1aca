//! What each fault means at each kind of point: the one mapping every adapter applies.

use std::time::Duration;

use chaos_core::rules::{Abort, BodyFault, Delay, DropKind, ErrorKind, Fault, Rule};
use chaos_core::{Action, Chaos, Decision, HttpAction, HttpSide, Injection, Point, RequestView};

fn injection(fault: Fault) -> Injection {
    let chaos = Chaos::new();
    chaos.add_rule(Rule::new("r", "p", fault)).unwrap();
    match chaos.decide(&RequestView::new(Point::from_name("p"), "")) {
        Decision::Inject(i) => i,
        Decision::Pass => panic!("the rule matches everything"),
    }
}

fn faults() -> Vec<(&'static str, Fault)> {
    vec![
        (
            "delay",
            Fault::Delay(Delay::Fixed(Duration::from_millis(5))),
        ),
        ("hang", Fault::Drop(DropKind::Hang)),
        ("reset", Fault::Drop(DropKind::Reset)),
        ("abort", Fault::Abort(Abort::http(503))),
        ("unavailable", Fault::Error(ErrorKind::Unavailable)),
        ("timeout", Fault::Error(ErrorKind::Timeout)),
        ("sqlstate", Fault::Error("sqlstate:40001".parse().unwrap())),
        ("body", Fault::Body(BodyFault::TruncateAfter(3))),
    ]
}

fn plain(a: &Action) -> String {
    match a {
        Action::Wait(_) => "wait".into(),
        Action::Proceed(_) => "proceed".into(),
        Action::Fail(e) if e.is_reset() => "fail reset".into(),
        Action::Fail(e) if e.is_timeout() => "fail timeout".into(),
        Action::Fail(e) if e.is_unavailable() => "fail unavailable".into(),
        Action::Fail(e) if e.sqlstate().is_some() => format!("fail {}", e.sqlstate().unwrap()),
        Action::Fail(e) if e.abort().is_some() => format!("fail abort {}", e.abort().unwrap()),
        Action::Fail(e) => format!("fail {e}"),
    }
}

fn http(a: &HttpAction) -> String {
    match a {
        HttpAction::Wait(_) => "wait".into(),
        HttpAction::WrapBody(_) => "wrap body".into(),
        HttpAction::Respond(i, res) => {
            let grpc = res.headers().get("grpc-status");
            assert_eq!(i.rule_id(), "r");
            match grpc {
                Some(code) => format!("respond grpc {}", code.to_str().unwrap()),
                None => format!("respond {}", res.status().as_u16()),
            }
        }
        HttpAction::Fail(_, e) if e.is_reset() => "fail reset".into(),
        HttpAction::Fail(_, e) if e.is_timeout() => "fail timeout".into(),
        HttpAction::Fail(_, e) if e.is_unavailable() => "fail unavailable".into(),
        HttpAction::Fail(_, e) => format!("fail {e}"),
    }
}

/// Plain `#[test]`s: an action is made outside any runtime without panicking (its timer
/// starts at the first poll).
#[test]
fn a_point_without_a_protocol() {
    let got: Vec<_> = faults()
        .into_iter()
        .map(|(n, f)| format!("{n}: {}", plain(&injection(f).action())))
        .collect();
    assert_eq!(
        got,
        [
            "delay: wait",
            "hang: wait",
            "reset: fail reset",
            "abort: fail abort 503",
            "unavailable: fail unavailable",
            "timeout: fail timeout",
            "sqlstate: fail 40001",
            "body: proceed",
        ]
    );
}

#[test]
fn http_points_by_side_and_protocol() {
    let table = |side, grpc| -> Vec<String> {
        faults()
            .into_iter()
            .map(|(n, f)| format!("{n}: {}", http(&injection(f).http_action(side, grpc))))
            .collect()
    };
    assert_eq!(
        table(HttpSide::Server, false),
        [
            "delay: wait",
            "hang: wait",
            "reset: fail reset",
            "abort: respond 503",
            "unavailable: respond 503",
            "timeout: respond 504",
            "sqlstate: respond 500",
            "body: wrap body",
        ]
    );
    assert_eq!(
        table(HttpSide::Server, true),
        [
            "delay: wait",
            "hang: wait",
            "reset: fail reset",
            "abort: respond grpc 14",
            "unavailable: respond grpc 14",
            "timeout: respond grpc 4",
            "sqlstate: respond grpc 13",
            "body: wrap body",
        ]
    );
    assert_eq!(
        table(HttpSide::Client, false),
        [
            "delay: wait",
            "hang: wait",
            "reset: fail reset",
            "abort: respond 503",
            "unavailable: fail unavailable",
            "timeout: fail timeout",
            "sqlstate: fail injected fault: sqlstate:40001 (rule `r`)",
            "body: wrap body",
        ]
    );
    assert_eq!(
        table(HttpSide::Client, true),
        [
            "delay: wait",
            "hang: wait",
            "reset: respond grpc 14",
            "abort: respond grpc 14",
            "unavailable: respond grpc 14",
            "timeout: respond grpc 4",
            "sqlstate: respond grpc 13",
            "body: wrap body",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hang_at_its_ceiling_fails_and_the_http_sides_say_what_that_is() {
    let hang = || match injection(Fault::Drop(DropKind::Hang)).action() {
        Action::Wait(w) => w,
        other => panic!("{other:?}"),
    };
    let start = tokio::time::Instant::now();
    let (inj, waited) = hang().await;
    assert_eq!(start.elapsed(), Duration::from_secs(300), "limits.max_hang");
    let fault = waited.unwrap_err();
    assert!(fault.is_timeout() && fault.rule_id() == "r");
    assert_eq!(
        http(&inj.http_timed_out(fault.clone(), HttpSide::Server, false)),
        "fail timeout"
    );
    let (inj, _) = hang().await;
    assert_eq!(
        http(&inj.http_timed_out(fault.clone(), HttpSide::Client, true)),
        "respond grpc 4"
    );
    let (inj, _) = hang().await;
    assert_eq!(
        http(&inj.http_timed_out(fault, HttpSide::Client, false)),
        "fail timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_waits_its_drawn_time_and_a_zero_delay_none() {
    let Action::Wait(w) =
        injection(Fault::Delay(Delay::Fixed(Duration::from_millis(250)))).action()
    else {
        panic!()
    };
    let start = tokio::time::Instant::now();
    assert!(w.await.1.is_ok());
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let Action::Wait(w) = injection(Fault::Delay(Delay::Fixed(Duration::ZERO))).action() else {
        panic!()
    };
    let start = tokio::time::Instant::now();
    assert!(w.await.1.is_ok());
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_gives_its_slot_back() {
    let chaos = Chaos::new();
    chaos
        .add_rule(Rule::new("h", "p", Fault::Drop(DropKind::Hang)).with_max_active(1))
        .unwrap();
    let view = RequestView::new(Point::from_name("p"), "");
    let Decision::Inject(i) = chaos.decide(&view) else {
        panic!()
    };
    let Action::Wait(w) = i.action() else {
        panic!()
    };
    let w = tokio::spawn(w);
    tokio::task::yield_now().await;
    assert!(!chaos.decide(&view).is_inject(), "max_active 1 is taken");
    w.abort();
    let _ = w.await;
    assert!(chaos.decide(&view).is_inject(), "the slot came back");
}

/// `ready` and `run_with` (what adapters use for work that is not one future) do what
/// `run` does with every fault, and `run_with` makes the work only when it is to run.
#[tokio::test(start_paused = true)]
async fn ready_and_run_with_apply_every_fault_as_run_does() {
    for (name, fault) in faults() {
        let by_run = injection(fault.clone()).run(async {}).await;
        let by_ready = injection(fault.clone()).ready().await;
        let made = std::cell::Cell::new(false);
        let by_run_with = injection(fault)
            .run_with(|| {
                made.set(true);
                async {}
            })
            .await;
        assert_eq!(by_ready.is_ok(), by_run.is_ok(), "{name}");
        assert_eq!(by_run_with.is_ok(), by_run.is_ok(), "{name}");
        assert_eq!(made.get(), by_run.is_ok(), "{name}: work made only to run");
        if let (Err(run), Err(ready), Err(run_with)) = (&by_run, &by_ready, &by_run_with) {
            assert_eq!(ready.to_string(), run.to_string(), "{name}");
            assert_eq!(run_with.to_string(), run.to_string(), "{name}");
        }
    }
}

/// The injection `ready` hands back is the rule's `max_active` slot: held while the work
/// lasts (a stream holds it until it ends), freed when dropped.
#[tokio::test]
async fn ready_hands_back_the_slot_to_hold() {
    let chaos = Chaos::new();
    let rule = Rule::new("one", "p", Fault::Delay(Delay::Fixed(Duration::ZERO)));
    chaos.add_rule(rule.with_max_active(1)).unwrap();
    let view = RequestView::new(Point::from_name("p"), "");
    let Decision::Inject(first) = chaos.decide(&view) else {
        panic!("the rule matches")
    };
    let held = first.ready().await.unwrap();
    assert!(!chaos.decide(&view).is_inject(), "the one slot is held");
    drop(held);
    assert!(chaos.decide(&view).is_inject(), "and free again");
}

/// The generic point runs the same outbound sequence as the HTTP clients: with no other
/// context in scope, the current OpenTelemetry context's baggage selects the rule.
#[cfg(feature = "otel")]
#[tokio::test]
async fn the_generic_point_reads_the_context_from_opentelemetry_baggage() {
    use chaos_core::rules::{Format, RuleSet};
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::{Context, KeyValue};

    let chaos = Chaos::new();
    chaos
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules: [{ id: g7, point: queue.publish, match: { scenario: g7 }, fault: { error: unavailable } }]",
            )
            .unwrap(),
        )
        .unwrap();
    assert!(
        chaos
            .inject("queue.publish", "orders", async {})
            .await
            .is_ok()
    );
    let cx = Context::new().with_baggage([KeyValue::new("chaos", "scenario=g7")]);
    let _attached = cx.attach();
    let err = chaos
        .inject("queue.publish", "orders", async {})
        .await
        .unwrap_err();
    assert!(err.is_unavailable() && err.rule_id() == "g7");
}

/// An injection decided before the kill switch turned on and acted on after it does
/// nothing, whatever its fault: the kill stops every injection not yet applied, not
/// only the waits already in flight.
#[tokio::test(start_paused = true)]
async fn an_injection_decided_before_the_kill_does_nothing_after_it() {
    let decided = |fault: Fault| {
        let chaos = Chaos::new();
        chaos.add_rule(Rule::new("r", "p", fault)).unwrap();
        let Decision::Inject(i) = chaos.decide(&RequestView::new(Point::from_name("p"), "")) else {
            panic!("the rule matches everything")
        };
        chaos.kill();
        i
    };
    for (name, fault) in faults() {
        assert_eq!(plain(&decided(fault.clone()).action()), "proceed", "{name}");
        for side in [HttpSide::Server, HttpSide::Client] {
            for grpc in [false, true] {
                let HttpAction::Wait(w) = decided(fault.clone()).http_action(side, grpc) else {
                    panic!("{name}: a killed injection waits for nothing")
                };
                let started = tokio::time::Instant::now();
                let (i, waited) = w.await;
                assert!(waited.is_ok(), "{name}");
                assert_eq!(i.rule_id(), "r");
                assert_eq!(tokio::time::Instant::now(), started, "{name}: no timer");
            }
        }
        let started = tokio::time::Instant::now();
        assert_eq!(decided(fault).run(async { 7 }).await.unwrap(), 7, "{name}");
        assert_eq!(tokio::time::Instant::now(), started);
    }
}
