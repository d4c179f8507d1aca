//! `chaosctl run` against a real system on loopback: checkout (axum, behind the server
//! layer, with an admin endpoint) calls payments through the chaos middleware. Each
//! verdict is reached on purpose.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_reqwest::ChaosMiddleware;
use chaos_tower::ChaosLayer;
use chaos_tower::admin::AdminService;
use http::StatusCode;
use serde_json::Value;
use tower_layer::Layer;

mod support;
use support::rendered;

const TOKEN: &str = "a-long-enough-admin-token-for-tests";

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Shop {
    chaos: Chaos,
    checkout: String,
    admin: String,
    broken: Arc<AtomicBool>,
}

/// payments, and checkout in front of it: with `fallback`, a failed payments call is
/// "pay later" (200); without, a 502.
async fn shop(fallback: bool) -> Shop {
    let payments = serve(Router::new().route("/pay", get(|| async { "paid" }))).await;
    let chaos = Chaos::new();
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .with(
        ChaosMiddleware::builder(&chaos)
            .target("payments")
            .timeout(Duration::from_millis(200))
            .build(),
    )
    .build();
    let broken = Arc::new(AtomicBool::new(false));
    let b = broken.clone();
    let app = Router::new().route(
        "/checkout",
        get(move || {
            let (client, broken) = (client.clone(), b.clone());
            async move {
                if broken.load(Ordering::Relaxed) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "broken");
                }
                match client.get(format!("http://{payments}/pay")).send().await {
                    Ok(r) if r.status().is_success() => (StatusCode::OK, "paid"),
                    _ if fallback => (StatusCode::OK, "pay later"),
                    _ => (StatusCode::BAD_GATEWAY, "payments failed"),
                }
            }
        }),
    );
    let layer = ChaosLayer::builder(&chaos).target("checkout").build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = layer.layer(app);
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(svc),
        )
        .await
        .unwrap()
    });
    let admin = serve(Router::new().fallback_service(AdminService::new(&chaos, TOKEN))).await;
    Shop {
        chaos,
        checkout: format!("http://{addr}/checkout"),
        admin: format!("http://{admin}"),
        broken,
    }
}

fn experiment(shop: &Shop, fault: &str, extra: &str) -> String {
    format!(
        "title: Checkout survives payments trouble
hypothesis: If payments fails for canary traffic, checkout still answers 2xx.
owner: team-checkout
baseline: 1s
recovery: 1s
steady_state:
  probes:
    - name: checkout
      url: {}
      rate: 40
      tolerance: {{ status: 2xx, error_rate_below: 2%, p99_below: 2s }}
method:
  admins: [{}]
  rules:
    - {{ id: payments-trouble, point: client, target: payments, fault: {fault} }}
  duration: 2s
{extra}",
        shop.checkout, shop.admin
    )
}

async fn run(dir: &tempfile::TempDir, body: &str, args: &[&str]) -> (Output, Value) {
    let path = dir.path().join("experiment.yaml");
    std::fs::write(&path, body).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"));
    cmd.arg("run").arg(&path).arg("--json").args(args);
    cmd.env("CHAOS_ADMIN_TOKEN", TOKEN).kill_on_drop(true);
    let o = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the run ended")
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn why(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handled_fault_holds_and_the_rules_are_gone_after() {
    let shop = shop(true).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let (o, v) = run(
        &dir,
        &experiment(&shop, "{ abort: 503 }", ""),
        &["--junit", junit.to_str().unwrap()],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", why(&o));
    assert_eq!(v["verdict"], "held");
    assert_eq!(v["recovered"], true);
    assert_eq!(v["rolled_back"], true);
    assert!(shop.chaos.rules().rules.is_empty(), "rolled back");
    // The rule was really in: the canaries were its experiment cohort, all 200s.
    let cohorts = &v["injected"][0]["snapshot"]["cohorts"];
    assert!(
        cohorts["experiment"]["total_requests"].as_u64().unwrap() > 10,
        "{v}"
    );
    assert_eq!(cohorts["experiment"]["total_errors"], 0);
    let phases: Vec<_> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].clone())
        .collect();
    assert_eq!(phases, ["baseline", "inject", "recovery"]);
    assert!(v["timeline"].as_array().unwrap().len() >= 4);
    let xml = std::fs::read_to_string(&junit).unwrap();
    // A test case for the probe and one for the injections.
    assert!(xml.contains("tests=\"2\" failures=\"0\""), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_fallback_is_refuted() {
    let shop = shop(false).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let (o, v) = run(
        &dir,
        &experiment(&shop, "{ abort: 503 }", ""),
        &["--junit", junit.to_str().unwrap()],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", why(&o));
    assert_eq!(v["verdict"], "refuted");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("during the injection, probe `checkout` error rate"),
        "{reason}"
    );
    // Every canary sent while the rule was in failed (one on the wire at the rollback may
    // have passed).
    let inject = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "inject")
        .unwrap();
    assert!(inject["error_rate"].as_f64().unwrap() > 0.9, "{inject}");
    assert_eq!(inject["within_tolerance"], false);
    assert_eq!(
        v["recovered"], true,
        "the steady state came back after the rollback"
    );
    assert!(shop.chaos.rules().rules.is_empty());
    let xml = std::fs::read_to_string(&junit).unwrap();
    // The failure names the probe, the phase, the figure and the tolerance.
    assert!(
        xml.contains("failures=\"1\"")
            && xml.contains("message=\"in the inject phase, probe `checkout` error rate ")
            && xml.contains("(tolerance below 2%)"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abort_condition_stops_the_run_early() {
    let shop = shop(false).await;
    let dir = tempfile::tempdir().unwrap();
    let body = experiment(
        &shop,
        "{ abort: 503 }",
        "abort:\n  - { probe: checkout, error_rate_above: 20%, for: 500ms }\n",
    )
    .replace("duration: 2s", "duration: 30s");
    let started = std::time::Instant::now();
    let (o, v) = run(&dir, &body, &[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", why(&o));
    assert_eq!(v["verdict"], "aborted");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("abort condition: probe `checkout` error rate"),
        "{v}"
    );
    assert!(v["aborted_at"].is_string());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "long before the 30 s were up"
    );
    assert!(shop.chaos.rules().rules.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rules_guard_aborts_the_run() {
    let shop = shop(false).await;
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let body = experiment(&shop, "{ abort: 503 }", "")
        .replace(
            "fault: { abort: 503 } }",
            "fault: { abort: 503 }, guard: { error_rate_above: 10%, min_requests: 5, window: 1s } }",
        )
        .replace("duration: 2s", "duration: 30s");
    let (o, v) = run(&dir, &body, &["--html", html.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", why(&o));
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("rule `payments-trouble` aborted") && reason.contains("error_rate_above"),
        "{reason}"
    );
    assert_eq!(v["injected"][0]["snapshot"]["state"], "aborted");
    assert!(shop.chaos.rules().rules.is_empty());
    // The page, as a browser renders it.
    if let Some(keep) = std::env::var_os("CHAOS_KEEP_REPORT") {
        std::fs::copy(&html, keep).unwrap();
    }
    let dom = rendered(&html);
    assert!(
        dom.contains("<span class=\"verdict\" id=\"verdict\">aborted</span>"),
        "{dom}"
    );
    assert!(dom.contains("If payments fails for canary traffic"));
    for part in [
        "id=\"timeline\"",
        "class=\"error-rate\"",
        "class=\"p99\"",
        "data-phase=\"inject\"",
        "id=\"abort\"",
        "data-cohort=\"experiment\"",
    ] {
        assert!(dom.contains(part), "{part} missing in the rendered page");
    }
    assert!(dom.contains("payments-trouble"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_steady_state_no_injection() {
    let shop = shop(true).await;
    shop.broken.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let mut events = shop.chaos.subscribe();
    let (o, v) = run(&dir, &experiment(&shop, "{ abort: 503 }", ""), &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", why(&o));
    assert_eq!(v["verdict"], "error");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a steady state"),
        "{v}"
    );
    assert!(events.try_recv().is_err(), "nothing was ever added");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_rolls_back() {
    let shop = shop(true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("experiment.yaml");
    std::fs::write(
        &path,
        experiment(&shop, "{ delay: 10ms }", "").replace("duration: 2s", "duration: 60s"),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .arg("run")
        .arg(&path)
        .arg("--json")
        .env("CHAOS_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait for the rule to be in, then interrupt as a terminal would.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while shop.chaos.rules().rules.is_empty() {
        assert!(std::time::Instant::now() < deadline, "never injected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", why(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["reason"].as_str().unwrap().starts_with("interrupted"),
        "{v}"
    );
    assert!(shop.chaos.rules().rules.is_empty(), "rolled back");
}

#[tokio::test]
async fn a_bad_experiment_file_is_refused_with_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "title: t\nhypothesis: h\nsteady_state: { probes: [] }\nmethod: { admins: [x], duration: 1s }\n",
            "field `steady_state`: an experiment needs at least one probe or query",
        ),
        (
            "title: t\nhypothesis: h\nsteady_stat: {}\n",
            "unknown field `steady_stat`",
        ),
        (
            "title: t\nhypothesis: h\nsteady_state: { probes: [{ name: p, url: 'ftp://x' }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\n",
            "is not an http(s) URL",
        ),
        (
            "title: t\nhypothesis: h\nsteady_state: { probes: [{ name: p, url: 'http://127.0.0.1:9' }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 700 } }] }\n",
            "fault.abort",
        ),
        (
            "title: t\nhypothesis: h\nsteady_state: { probes: [{ name: p, url: 'http://127.0.0.1:9' }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\nabort: [{ probe: q, error_rate_above: 5% }]\n",
            "field `abort[0].probe`: no probe is called `q`",
        ),
        (
            "title: t\nhypothesis: h\nsteady_state: { queries: [{ name: e, query: up, below: 1 }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\n",
            "field `prometheus`: queries, `admins_from` and cohorts `from: prometheus` need `prometheus: { url: ... }`",
        ),
        (
            "title: t\nhypothesis: h\nprometheus: { url: 'http://127.0.0.1:9' }\nsteady_state: { queries: [{ name: e, query: up }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\n",
            "field `steady_state.queries[0].below`: a query needs `below`, `above` or `between: [low, high]`",
        ),
        (
            "title: t\nhypothesis: h\nprometheus: { url: 'http://127.0.0.1:9' }\nsteady_state: { queries: [{ name: e, query: up, below: 1 }] }\nmethod: { admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\nabort: [{ query: f, above: 2, for: 5s }]\n",
            "field `abort[0].query`: no steady-state query is called `f`",
        ),
        (
            "title: t\nhypothesis: h\nprometheus: { url: 'http://127.0.0.1:9' }\nsteady_state: { queries: [{ name: e, query: up, below: 1 }] }\nmethod: { admins_from: { prometheus_job: x }, admins: [http://127.0.0.1:9], duration: 1s, rules: [{ id: r, point: server, fault: { abort: 503 } }] }\n",
            "field `method.admins_from`: give `admins` or `admins_from`, not both",
        ),
        (
            "title: t\nhypothesis: h\nprometheus: { url: 'http://127.0.0.1:9' }\nsteady_state: { queries: [{ name: e, query: up, blow: 1 }] }\n",
            "unknown field `blow`",
        ),
    ];
    for (body, want) in cases {
        let (o, _) = run(&dir, body, &[]).await;
        assert_eq!(o.status.code(), Some(3), "{body}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want) && err.contains("experiment.yaml"),
            "{body}\n got: {err}\nwant: {want}"
        );
    }
}

/// An admin endpoint behind a gateway that lets rules in but refuses to remove them.
async fn sticky_admin(chaos: &Chaos) -> String {
    use axum::routing::delete;
    let app = Router::new()
        .route(
            "/chaos/rules/{id}",
            delete(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({ "error": "gateway down" })),
                )
            }),
        )
        .fallback_service(AdminService::new(chaos, TOKEN));
    format!("http://{}", serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_that_cannot_roll_back_says_so_and_exits_3() {
    let mut shop = shop(true).await;
    shop.admin = sticky_admin(&shop.chaos).await;
    let dir = tempfile::tempdir().unwrap();
    let (o, v) = run(&dir, &experiment(&shop, "{ delay: 5ms }", ""), &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", why(&o));
    assert_eq!(v["rolled_back"], false);
    assert!(
        v["reason"].as_str().unwrap().starts_with("ROLLBACK FAILED"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("ROLLBACK FAILED"));
    assert_eq!(
        shop.chaos.rules().rules.len(),
        1,
        "the rule is indeed still in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cohorts_from_the_admin_api_can_refute() {
    // The probe tolerates everything; the cohort tolerance does not.
    let shop = shop(false).await;
    let dir = tempfile::tempdir().unwrap();
    let body = experiment(&shop, "{ abort: 503 }", "")
        .replace("error_rate_below: 2%", "error_rate_below: 100%")
        .replace(
            "steady_state:\n  probes:",
            "steady_state:\n  cohorts: { error_rate_below: 5% }\n  probes:",
        );
    let junit = dir.path().join("report.xml");
    let (o, v) = run(&dir, &body, &["--junit", junit.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(1), "{}", why(&o));
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("the experiment cohort's error rate 100.00% (tolerance below 5%)"),
        "{reason}"
    );
    // The probe held; the cohorts' test case is the one that fails, and says why.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"3\" failures=\"1\"")
            && xml.contains("name=\"cohorts\"><failure message=\"in the inject phase, the experiment cohort's error rate 100.00% (tolerance below 5%)"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_rules_never_inject_has_no_verdict() {
    // `target: payents`: a typo. Before, this run was HELD with INJECTED 0.
    let shop = shop(false).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let body =
        experiment(&shop, "{ abort: 503 }", "").replace("target: payments", "target: payents");
    let (o, v) = run(&dir, &body, &["--junit", junit.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(3), "{}", why(&o));
    assert_eq!(v["verdict"], "error");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("nothing was injected, so the hypothesis was not tested")
            && reason.contains(
                "rule payments-trouble matched 0 requests on 1 instances; targets this point (client) has seen on them: payments"
            ),
        "{reason}"
    );
    // The instance said so when the rule went in; the report carries it.
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("no `client` point with target `payents`"),
        "{warnings}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("target `payents`"));
    // Injections per rule and instance are in the report.
    assert_eq!(v["injections"][0]["rule"], "payments-trouble");
    assert_eq!(v["injections"][0]["injected"], 0);
    assert!(shop.chaos.rules().rules.is_empty(), "rolled back");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"injections\"><failure message=\"the rules injected nothing"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_where_a_rule_injected_nothing_while_others_did_is_named() {
    // The canaries reach only the first shop: the rule fires there and not on the second.
    let shop_a = shop(true).await;
    let shop_b = shop(true).await;
    let dir = tempfile::tempdir().unwrap();
    let body = experiment(&shop_a, "{ abort: 503 }", "").replace(
        &format!("admins: [{}]", shop_a.admin),
        &format!("admins: [{}, {}]", shop_a.admin, shop_b.admin),
    );
    let (o, v) = run(&dir, &body, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", why(&o));
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "rule `payments-trouble` injected nothing on {} (matched 0) while it injected on 1 other instance(s)",
            shop_b.admin
        )),
        "{warnings}"
    );
    let on_a = v["injections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["admin"] == shop_a.admin.as_str())
        .unwrap();
    assert!(on_a["injected"].as_u64().unwrap() > 0, "{v}");
}
