//! A fleet judged by a real Prometheus: three replicas on loopback, each with its own
//! engine and admin port, scraped on `/chaos/metrics`; experiments whose instances are
//! found through Prometheus and whose steady state and abort condition are PromQL.
//!
//! Needs Debian's `prometheus` (2.42; `scripts/test` installs it). Without it these tests
//! say so and pass, except under `CI=true`, where they fail.

use std::time::Duration;

use chaos_core::rules::Dur;
use chaos_examples::fleet::{self, ABORT_FOR, Fleet, RULE};
use chaos_examples::prometheus::{self, Prometheus, SCRAPE};
use chaosctl::experiment::Verdict;
use serde_json::Value;

fn secs(v: &Value) -> f64 {
    serde_json::from_value::<Dur>(v.clone())
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .0
        .as_secs_f64()
}

fn phase_start(report: &Value, phase: &str) -> f64 {
    report["phase_marks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["phase"] == phase)
        .map(|m| secs(&m["at"]))
        .unwrap_or_else(|| panic!("no {phase} in {report}"))
}

async fn started(replicas: usize) -> (Fleet, Prometheus) {
    Fleet::watched(replicas).await.unwrap()
}

fn assert_rolled_back(fleet: &Fleet) {
    for r in &fleet.replicas {
        assert!(
            r.chaos.rules().rules.is_empty(),
            "rules left on {}",
            r.admin
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_is_judged_by_prometheus() {
    if !prometheus::available_for_test() {
        return;
    }
    let (mut fleet, mut prom) = started(3).await;

    // 1. Harm no single replica can judge: each sees a third of the canaries, under its
    //    guard's min_requests; the fleet-wide query aborts it.
    let body = fleet::experiment(fleet.front, prom.url(), Duration::from_secs(20));
    let (verdict, r) = fleet::run("abort", &body).await;
    assert_eq!(verdict, Verdict::Aborted, "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("abort condition: query `fleet-errors` was above 0.2 for 3s"),
        "{reason}"
    );
    // The instances were found through Prometheus.
    assert_eq!(
        r["instances"]["admins"].as_array().unwrap().len(),
        3,
        "{r:#}"
    );
    assert!(
        r["instances"]["from"]
            .as_str()
            .unwrap()
            .starts_with("Prometheus job `checkout-admin`")
    );
    // No replica's guard judged: each saw fewer requests than it needs.
    for i in r["injected"].as_array().unwrap() {
        assert_ne!(i["snapshot"]["state"], "aborted", "{i}");
        assert!(
            i["snapshot"]["cohorts"]["experiment"]["total_requests"]
                .as_u64()
                .unwrap()
                < 200
        );
    }
    // Aborted within `for` plus two scrape intervals of the breach.
    let breach = r["query_timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["value"].as_f64().is_some_and(|v| v > 0.2))
        .map(|p| secs(&p["at"]))
        .unwrap_or_else(|| panic!("no breach in {r:#}"));
    let aborted = secs(&r["aborted_at"]);
    let took = aborted - breach;
    let bound = (ABORT_FOR + 2 * SCRAPE).as_secs_f64();
    eprintln!(
        "fleet abort: {took:.2}s after the first breaching evaluation ({:.2}s after the rule went in; bound {bound}s)",
        aborted - phase_start(&r, "inject")
    );
    assert!(took <= bound, "aborted {took:.2}s after the breach: {r:#}");
    assert!(
        took >= ABORT_FOR.as_secs_f64() - 0.01,
        "never on one sample"
    );
    assert_rolled_back(&fleet);
    assert_eq!(r["recovered"], true, "the rule's series ended: {r:#}");
    // Its series have left the query's window before the next experiment's baseline.
    for _ in 0..100 {
        if prom.query(fleet::FLEET_ERRORS).await.unwrap() == serde_json::json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 2. The same fault with the fallback in place: held, by the same query. A replica
    //    that comes up meanwhile is named and left alone.
    fleet.set_fallback(true);
    let body = fleet::experiment(fleet.front, prom.url(), Duration::from_secs(10));
    let run = tokio::spawn(async move { fleet::run("held", &body).await });
    // A second into the inject phase (the baseline is 3 s), a fourth replica comes up in
    // the job; Prometheus lists it long before the phase ends.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let newcomer = fleet.add_replica().await.admin;
    prom.set_targets(&fleet.admins()).unwrap();
    prom.wait_listed(4).await.unwrap();
    let (verdict, r) = run.await.unwrap();
    assert_eq!(verdict, Verdict::Held, "{r:#}");
    // The cohorts were read through Prometheus (`from: prometheus`), summed over the fleet.
    let last = r["cohort_timeline"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    let requests = last["experiment"]["requests"].as_u64().unwrap_or(0);
    assert!(requests > 50, "{r:#}");
    // With the fallback every answer is a 200. The one exception is a request served just
    // before the rule went in, while the engine had no rules and so opened no scope for
    // its hops: its call to payments, decided just after, is matched and judged by its own
    // outcome (the call timed out), though checkout answered "pay later". Seen once in CI:
    // 1 in 99 on one replica, the replica that matched one request more than the probe
    // sent it. So a few such errors, far below the query's tolerance, and no more.
    let errors = last["experiment"]["errors"].as_u64().unwrap_or(0);
    assert!(errors * 20 < requests, "{r:#}");
    let q = r["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["phase"] == "inject")
        .unwrap();
    assert!(q["evaluations"].as_u64().unwrap() >= 5, "{q}");
    // Below the tolerance (0.05), whatever a request straddling the rule's arrival adds.
    assert!(q["max"].as_f64().unwrap() < 0.05, "{q}");
    let injected: u64 = r["injections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["injected"].as_u64().unwrap())
        .sum();
    assert!(injected > 50, "{r:#}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "instance http://{newcomer} appeared in job `checkout-admin` during the run and was left alone"
        )),
        "{warnings}"
    );
    assert_eq!(
        fleet.replicas[3].chaos.version(),
        0,
        "the newcomer never got a rule"
    );
    assert_rolled_back(&fleet);

    // 3. The guide's ready queries (docs/dashboards.md), against what Prometheus scraped
    //    from /chaos/metrics: each answers the series the guide says.
    fleet.replicas[0].chaos.kill();
    tokio::time::sleep(3 * SCRAPE).await;
    fleet.replicas[0].chaos.resume();
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/dashboards.md"
    ))
    .unwrap();
    let queries = fleet::ready_queries(&page);
    // What each answers, per the guide's comments: by rule; by rule and cohort; by
    // cohort for one rule; by rule; the aborts, with their rule and reason.
    let want: [&[(&str, &str)]; 5] = [
        &[("rule", RULE)],
        &[("rule", RULE), ("cohort", "experiment")],
        &[("cohort", "experiment")],
        &[("rule", RULE)],
        &[("rule", "*"), ("reason", "kill_switch")],
    ];
    assert_eq!(queries.len(), want.len(), "{queries:#?}");
    for (q, labels) in queries.iter().zip(want) {
        let result = prom.query(q).await.unwrap();
        let series = result.as_array().unwrap();
        let found = series
            .iter()
            .any(|s| labels.iter().all(|(k, v)| s["metric"][*k] == *v));
        assert!(
            found,
            "`{q}` answered {result}, wanted a series with {labels:?}"
        );
        if labels.len() == 1 && labels[0].0 == "rule" {
            // By rule only: one series per rule, no other label.
            for s in series {
                assert_eq!(s["metric"].as_object().unwrap().len(), 1, "`{q}`: {s}");
            }
        }
    }
    // The p99 of the experiment cohort is the 300 ms delay's bucket, cut at 150 ms by the
    // timeout: between 0.1 and 0.25 s.
    let p99 = prom.query(&queries[2]).await.unwrap();
    let v: f64 = p99
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"]["cohort"] == "experiment")
        .and_then(|s| s["value"][1].as_str()?.parse().ok())
        .unwrap();
    assert!((0.1..=0.25).contains(&v), "p99 {v}");
    prom.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blind_judge_aborts_the_run() {
    if !prometheus::available_for_test() {
        return;
    }
    let (fleet, prom) = started(3).await;
    fleet.set_fallback(true);
    let body = fleet::experiment(fleet.front, prom.url(), Duration::from_secs(15));
    let prom = std::sync::Arc::new(std::sync::Mutex::new(prom));
    let p = prom.clone();
    // Prometheus goes away a few seconds into the inject phase (baseline is 3 s).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await;
        p.lock().unwrap().stop();
    });
    let (verdict, r) = fleet::run("blind", &body).await;
    assert_eq!(verdict, Verdict::Aborted, "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the judge is blind: query `fleet-errors` cannot be evaluated")
            && reason.contains("unreachable"),
        "{reason}"
    );
    assert!(
        secs(&r["aborted_at"]) < phase_start(&r, "inject") + 8.0,
        "{r:#}"
    );
    assert_eq!(r["rolled_back"], true);
    assert_rolled_back(&fleet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_reachable_prometheus_nothing_is_injected() {
    if !prometheus::available_for_test() {
        return;
    }
    let (fleet, mut prom) = started(3).await;
    let url = prom.url().to_owned();
    // Found through Prometheus, then it goes away before the baseline is judged.
    let body = fleet::experiment(fleet.front, &url, Duration::from_secs(5)).replace(
        "admins_from: { prometheus_job: checkout-admin }",
        &format!(
            "admins: [{}]",
            fleet
                .admins()
                .iter()
                .map(|a| format!("http://{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    prom.stop();
    let (verdict, r) = fleet::run("unreachable", &body).await;
    assert_eq!(verdict, Verdict::Error, "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("unreachable") && reason.ends_with("nothing was injected"),
        "{reason}"
    );
    for rep in &fleet.replicas {
        assert_eq!(rep.chaos.version(), 0, "no rule ever went in");
    }
}
