//! A tour of the rules engine: loads `examples/rules.yaml` and shows, for a handful of
//! sample requests, which rule fires and what it would inject.
//!
//! Run with
//!
//! ```not_rust
//! cargo run -p chaos-examples --bin rules-tour
//! ```
//!
//! It exits 0 when every decision was the expected one.

use std::time::{Duration, SystemTime};

use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::{Format, RuleSet};
use chaos_core::{Chaos, Decision, Point, RequestView};
use http::{HeaderMap, HeaderValue, Method};

struct Sample {
    what: &'static str,
    point: Point<'static>,
    target: &'static str,
    method: Option<Method>,
    path: Option<&'static str>,
    sql: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    expect: Option<&'static str>,
}

fn sample(what: &'static str, point: Point<'static>, target: &'static str) -> Sample {
    Sample {
        what,
        point,
        target,
        method: None,
        path: None,
        sql: None,
        headers: Vec::new(),
        expect: None,
    }
}

impl Sample {
    fn http(mut self, m: Method, path: &'static str) -> Self {
        self.method = Some(m);
        self.path = Some(path);
        self
    }
    fn sql(mut self, s: &'static str) -> Self {
        self.sql = Some(s);
        self
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    fn expect(mut self, rule: &'static str) -> Self {
        self.expect = Some(rule);
        self
    }
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules.yaml");
    let rules = RuleSet::from_file(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    // A demo key; in production it comes from CHAOS_SIGNING_KEY.
    let keys = SigningKeys::new("demo-signing-key");
    let chaos = Chaos::builder()
        .rules(rules)
        .signing_keys(keys.clone())
        .seed(7)
        .build()
        .expect("valid rules");
    println!("loaded {} rules from {path}\n", chaos.rules().rules.len());

    let signed_value = "abort=503;target=orders";
    let signature = keys.sign(signed_value, SystemTime::now() + Duration::from_secs(600));

    let samples = vec![
        sample("call to payments, untagged", Point::Client, "payments"),
        sample("call to payments, GameDay tag", Point::Client, "payments")
            .header("x-chaos", "scenario=gameday-7")
            .expect("payments-slow"),
        sample("call to inventory, GameDay tag", Point::Client, "inventory")
            .header("x-chaos", "scenario=gameday-7"),
        sample("POST /orders/1, retry-test #1", Point::Server, "orders")
            .http(Method::POST, "/orders/1")
            .header("x-chaos", "scenario=retry-test")
            .expect("orders-retry"),
        sample("POST /orders/1, retry-test #2", Point::Server, "orders")
            .http(Method::POST, "/orders/1")
            .header("x-chaos", "scenario=retry-test")
            .expect("orders-retry"),
        sample("POST /orders/1, retry-test #3", Point::Server, "orders")
            .http(Method::POST, "/orders/1")
            .header("x-chaos", "scenario=retry-test"),
        sample("UPDATE orders, real traffic", Point::Sql, "orders-db")
            .sql("UPDATE orders SET paid = true WHERE id = $1"),
        sample("UPDATE orders, test traffic", Point::Sql, "orders-db")
            .sql("UPDATE orders SET paid = true WHERE id = $1")
            .header("x-test-traffic", "1")
            .expect("db-deadlock"),
        sample("SELECT orders, test traffic", Point::Sql, "orders-db")
            .sql("SELECT * FROM orders")
            .header("x-test-traffic", "1"),
        sample("unsigned directive abort=503", Point::Server, "orders")
            .http(Method::GET, "/orders/2")
            .header("x-chaos", signed_value),
        sample("signed directive abort=503", Point::Server, "orders")
            .http(Method::GET, "/orders/2")
            .header("x-chaos", signed_value)
            .header("x-chaos-signature", signature.clone())
            .expect("x-chaos"),
        sample(
            "publish to queue (shadow rule)",
            Point::Named("queue.publish"),
            "events",
        ),
    ];

    let mut ok = true;
    println!(
        "{:<34} {:<18} {:<28} expected",
        "request", "rule", "would inject"
    );
    println!("{}", "-".repeat(92));
    for s in &samples {
        let mut h = HeaderMap::new();
        for (k, v) in &s.headers {
            h.insert(*k, HeaderValue::from_str(v).expect("ASCII header"));
        }
        let ctx = chaos.context_from_headers(&h);
        let mut view = RequestView::new(s.point, s.target)
            .headers(&h)
            .context(ctx.as_ref());
        if let (Some(m), Some(p)) = (&s.method, s.path) {
            view = view.method(m).path(p);
        }
        if let Some(q) = s.sql {
            view = view.sql(q);
        }
        let (rule, fault) = match chaos.decide(&view) {
            Decision::Inject(i) => {
                let fault = match i.delay() {
                    Some(d) => format!("delay {d:?}"),
                    None => i.fault().to_string(),
                };
                (Some(i.rule_id().to_owned()), fault)
            }
            Decision::Pass => (None, "nothing".to_owned()),
        };
        let good = rule.as_deref() == s.expect;
        ok &= good;
        println!(
            "{:<34} {:<18} {:<28} {}",
            s.what,
            rule.as_deref().unwrap_or("-"),
            fault,
            if good { "yes" } else { "NO" }
        );
    }

    // The cohort rule: the same users, every time.
    let cohort = |user: &str| {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_str(user).expect("ASCII"));
        chaos
            .decide(&RequestView::new(Point::Client, "inventory").headers(&h))
            .is_inject()
    };
    let users: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let first: Vec<bool> = users.iter().map(|u| cohort(u)).collect();
    let stable = users.iter().zip(&first).all(|(u, f)| cohort(u) == *f);
    let share = first.iter().filter(|b| **b).count();
    println!(
        "\ninventory-cohort: {share} of 1000 users are in the 10% cohort; stable across calls: {stable}"
    );
    ok &= stable && (50..150).contains(&share);

    let snap = chaos.snapshot();
    let shadow = snap
        .rules
        .iter()
        .find(|r| r.rule.id == "queue-drop-shadow")
        .map_or(0, |r| r.counters.shadowed);
    println!(
        "queue-drop-shadow: {shadow} publish would have been dropped (shadow mode, nothing injected)"
    );
    ok &= shadow == 1;

    // A bad rules file is refused whole, with where and why.
    let bad = "rules:\n  - id: payments-slow\n    point: client\n    fault: { delay: 300ms }\n    rate: 125%\n";
    match RuleSet::parse(Format::Yaml, bad) {
        Err(e) => println!("\na bad rules file is refused: {e}"),
        Ok(_) => ok = false,
    }

    // The kill switch: nothing is injected, at once.
    chaos.kill();
    let mut h = HeaderMap::new();
    h.insert("x-chaos", HeaderValue::from_static("scenario=gameday-7"));
    let ctx = chaos.context_from_headers(&h);
    let killed = !chaos
        .decide(&RequestView::new(Point::Client, "payments").context(ctx.as_ref()))
        .is_inject();
    println!("after the kill switch, the GameDay request is left alone: {killed}");
    ok &= killed;

    if ok {
        println!("\nevery decision was the expected one");
    } else {
        println!("\nSOME DECISIONS WERE NOT THE EXPECTED ONES");
        std::process::exit(1);
    }
}
