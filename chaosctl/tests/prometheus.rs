//! The fleet commands with their instances found through a real Prometheus: the active,
//! healthy targets of the scrape job that scrapes every admin port's `/chaos/metrics`.
//! Needs Debian's `prometheus` (`scripts/test` installs it); without it the tests say so
//! and pass, except under `CI=true`.

use chaos_examples::fleet::{self, Fleet};
use chaos_examples::prometheus::{self, JOB};

mod support;

async fn chaosctl(args: &[&str]) -> (i32, String, String) {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .args(args)
        .env("CHAOS_ADMIN_TOKEN", fleet::TOKEN)
        .output()
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_commands_find_their_instances_through_prometheus() {
    if !prometheus::available_for_test() {
        return;
    }
    let (fleet, prom) = Fleet::watched(3).await.unwrap();
    let from = ["--admins-from-prometheus", prom.url(), "--job", JOB];

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - { id: payments-slow, point: client, target: payments, fault: { delay: 300ms } }\n  - { id: typo, point: client, target: paymnts, fault: { abort: 503 } }\n",
    )
    .unwrap();
    let (code, out, err) =
        chaosctl(&[&["apply", rules.to_str().unwrap()][..], &from].concat()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("3 instances from Prometheus job `checkout-admin`"),
        "{err}"
    );
    for r in &fleet.replicas {
        assert_eq!(r.chaos.rules().rules.len(), 2, "applied on {}", r.admin);
        // Each instance warned of the rule that cannot fire there.
        assert!(
            out.contains(&format!(
                "warning: http://{}: rule `typo`: this instance has no `client` point with target `paymnts`; targets this point has seen: payments",
                r.admin
            )),
            "{out}"
        );
    }
    let (code, out, _) = chaosctl(&[&["status"][..], &from].concat()).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("fleet: 3 of 3 reached"), "{out}");
    let (code, _, _) = chaosctl(&[&["kill"][..], &from].concat()).await;
    assert_eq!(code, 0);
    assert!(fleet.replicas.iter().all(|r| r.chaos.is_killed()));

    // A job with no healthy target: nothing to act on, said, exit 1.
    let (code, _, err) = chaosctl(&[
        "resume",
        "--admins-from-prometheus",
        prom.url(),
        "--job",
        "nobody",
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has no healthy target in job `nobody`"),
        "{err}"
    );
    assert!(
        fleet.replicas.iter().all(|r| r.chaos.is_killed()),
        "nothing resumed"
    );
    // --job goes with --admins-from-prometheus.
    let (code, _, err) = chaosctl(&["status", "--job", JOB]).await;
    assert_eq!(code, 64, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_run_reports_its_query_and_its_breach() {
    if !prometheus::available_for_test() {
        return;
    }
    let (fleet, prom) = Fleet::watched(3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(
        &file,
        fleet::experiment(fleet.front, prom.url(), std::time::Duration::from_secs(15)),
    )
    .unwrap();
    let (page, junit) = (
        dir.path().join("report.html"),
        dir.path().join("report.xml"),
    );
    let (code, out, err) = chaosctl(&[
        "run",
        file.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2, "aborted: {out}{err}");
    // The table per phase names the query, its figures and its tolerance.
    assert!(
        out.lines().any(|l| l.starts_with("inject    fleet-errors")
            && l.contains("below 0.05")
            && l.ends_with("no")),
        "{out}"
    );
    // JUnit: the query's test case fails with the phase, the figure and the tolerance.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"query fleet-errors\"><failure message=\"in the inject phase, query `fleet-errors` was out of tolerance below 0.05"),
        "{xml}"
    );
    // The page as a browser renders it: the query's chart with its breaches marked.
    let dom = support::rendered(&page);
    assert!(dom.contains("data-query=\"fleet-errors\""), "{dom}");
    assert!(dom.matches("class=\"breach\"").count() >= 2, "{dom}");
    assert!(dom.contains("<td>fleet-errors</td>"));
}
