//! `chaosctl` as a user runs it: the binary, against real admin endpoints on loopback.

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, SystemTime};

use axum::Router;
use chaos_core::Chaos;
use chaos_core::context::signature::SigningKeys;
use chaos_core::rules::{Format, RuleSet};
use chaos_tower::admin::AdminService;
use serde_json::Value;

const TOKEN: &str = "a-long-enough-admin-token-for-tests";

/// An admin endpoint on a fresh loopback port, for `chaos`, taking `token`.
async fn instance(chaos: &Chaos, token: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let admin = AdminService::new(chaos, token);
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback_service(admin))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

fn engine(yaml: &str) -> Chaos {
    let chaos = Chaos::new();
    chaos
        .replace(RuleSet::parse(Format::Yaml, yaml).unwrap())
        .unwrap();
    chaos
}

/// Runs the binary (off the runtime's threads) with the admin token in its environment.
async fn chaosctl(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"));
    cmd.args(args)
        .env("CHAOS_ADMIN_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("chaosctl finished")
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn file(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const GAMEDAY: &str = "rules:
  - id: payments-slow
    point: client
    target: payments
    fault: { delay: 300ms }
    rate: 5%
    guard: { error_rate_above: 5%, window: 30s }
";

#[tokio::test]
async fn check_prints_the_rules_and_refuses_with_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let good = file(&dir, "good.yaml", GAMEDAY);
    let o = chaosctl(&["check", &good]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1 rules"), "{out}");
    for cell in [
        "payments-slow",
        "client",
        "payments",
        "delay 300ms",
        "5%",
        "errors > 5% /30s",
        "ttl 1h (default)",
    ] {
        assert!(out.contains(cell), "{cell} missing in\n{out}");
    }
    let bad = file(
        &dir,
        "bad.yaml",
        "rules:\n  - id: r1\n    point: server\n    fault: { delay: 1s }\n    rat: 5%\n",
    );
    let o = chaosctl(&["check", &good, &bad]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{bad}:5:5: rule `r1`, field `rat`: unknown field `rat`"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn sign_prints_two_headers_a_service_trusts() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"));
    let o = cmd
        .args([
            "sign",
            "--key-env",
            "GAMEDAY_KEY",
            "--ttl",
            "10m",
            "delay=300ms;point=client;target=payments",
        ])
        .env("GAMEDAY_KEY", "the-signing-key")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut headers = http::HeaderMap::new();
    for line in out.lines() {
        let (k, v) = line.split_once(": ").unwrap();
        headers.insert(
            http::HeaderName::try_from(k).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    assert_eq!(headers.len(), 2, "{out}");
    let signature = headers["x-chaos-signature"].to_str().unwrap();
    let keys = SigningKeys::new("the-signing-key");
    let verified = keys.verify(
        headers["x-chaos"].as_bytes(),
        signature.as_bytes(),
        SystemTime::now(),
    );
    assert!(verified.is_ok(), "{verified:?}");
    // A service with the key trusts the directive.
    let chaos = Chaos::builder().signing_keys(keys).build().unwrap();
    assert!(chaos.context_from_headers(&headers).unwrap().is_trusted());

    // No key, or a value the services would ignore: refused.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .args(["sign", "--key-env", "NO_SUCH_KEY_VAR", "delay=1s"])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .args(["sign", "--key-env", "GAMEDAY_KEY", "delay=forever"])
        .env("GAMEDAY_KEY", "k")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_status_kill_resume_remove_on_two_instances() {
    let (a, b) = (Chaos::new(), Chaos::new());
    let (ua, ub) = (instance(&a, TOKEN).await, instance(&b, TOKEN).await);
    let dir = tempfile::tempdir().unwrap();
    let rules = file(&dir, "gameday.yaml", GAMEDAY);

    let o = chaosctl(&["apply", &rules, "--admin", &ua, "--admin", &ub]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for c in [&a, &b] {
        assert_eq!(c.rules().rules[0].id, "payments-slow");
    }

    // The fleet file form, and JSON for scripts.
    let fleet = file(
        &dir,
        "fleet.txt",
        &format!("# the canaries\n{ua}\n\n{ub}/\n"),
    );
    let o = chaosctl(&["status", "--admins", &fleet, "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"].as_array().unwrap().len(), 2);
    assert_eq!(v["fleet"]["reached"], 2);
    let r = &v["fleet"]["rules"][0];
    assert_eq!(r["id"], "payments-slow");
    assert_eq!(r["instances"], 2);
    assert_eq!(r["states"]["active"], 2);
    assert_eq!(r["guards"]["too_few_requests"], 2);
    assert_eq!(
        v["instances"][0]["snapshot"]["rules"][0]["cohorts"]["window"],
        "30s"
    );
    // The table form names each instance and the fleet.
    let o = chaosctl(&["status", "--admins", &fleet]).await;
    let out = text(&o);
    assert!(
        out.contains(&ua) && out.contains(&ub) && out.contains("fleet: 2 of 2 reached"),
        "{out}"
    );

    let o = chaosctl(&["kill", "--admins", &fleet]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(a.is_killed() && b.is_killed());
    let o = chaosctl(&["resume", "--admins", &fleet]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!a.is_killed() && !b.is_killed());

    let one = file(
        &dir,
        "one.yaml",
        "id: orders-down\npoint: client\ntarget: orders\nfault: { abort: 503 }\n",
    );
    let o = chaosctl(&["add", &one, "--admins", &fleet]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(a.rules().rules.len(), 2);
    let o = chaosctl(&["remove", "orders-down", "--admins", &fleet]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(b.rules().rules.len(), 1);
    // Removing it again: every instance says 404, and so does the exit code.
    let o = chaosctl(&["remove", "orders-down", "--admins", &fleet]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("refused (404 Not Found)"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_is_all_or_nothing_when_one_instance_refuses() {
    let before = "rules:\n  - { id: steady, point: server, fault: { abort: 503 }, rate: 1% }\n";
    let (a, b) = (engine(before), engine(before));
    let ua = instance(&a, TOKEN).await;
    // b takes another token: it refuses whatever this fleet sends.
    let ub = instance(&b, "another-instance-another-token").await;
    let dir = tempfile::tempdir().unwrap();
    let rules = file(&dir, "gameday.yaml", GAMEDAY);
    let kept = a.rules();

    let o = chaosctl(&["apply", &rules, "--admin", &ua, "--admin", &ub]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("not applied: every instance must be reachable first"),
        "{out}"
    );
    assert_eq!(a.rules(), kept, "nothing changed");

    // Both reachable, and b refuses the change itself (an instance behind a gateway that
    // freezes writes): a took it, and is put back to what it had.
    let ub = frozen(&b).await;
    let o = chaosctl(&["apply", &rules, "--admin", &ua, "--admin", &ub]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("refused (409 Conflict): frozen for the release"),
        "{out}"
    );
    assert!(out.contains(&format!("ok {ua}: put back")), "{out}");
    assert_eq!(a.rules(), kept, "a has what it had");
    assert_eq!(b.rules(), kept);
    // Unchanged rules kept their state through it: the same document went back.
    assert_eq!(a.snapshot().rules[0].rule.id, "steady");
}

/// An admin endpoint whose gateway refuses rule changes: reads pass, `PUT` and `POST`
/// are a 409.
async fn frozen(chaos: &Chaos) -> String {
    use axum::routing::put;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let admin = AdminService::new(chaos, TOKEN);
    let app = Router::new()
        .route("/chaos/rules", put(refuse).post(refuse))
        .fallback_service(admin);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn refuse() -> (http::StatusCode, axum::Json<Value>) {
    (
        http::StatusCode::CONFLICT,
        axum::Json(serde_json::json!({ "error": "frozen for the release" })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_takes_the_rule_back_where_it_was_added_when_one_refuses() {
    let (a, b) = (engine(GAMEDAY), engine(GAMEDAY));
    let (ua, ub) = (instance(&a, TOKEN).await, frozen(&b).await);
    let dir = tempfile::tempdir().unwrap();
    let one = file(
        &dir,
        "one.json",
        r#"{"id": "orders-down", "point": "client", "fault": {"abort": 503}}"#,
    );
    let o = chaosctl(&["add", &one, "--admin", &ua, "--admin", &ub]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("ok {ua}: put back")), "{out}");
    assert_eq!(a.rules().rules.len(), 1, "taken back from a");
    assert_eq!(b.rules().rules.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_reaches_every_instance_it_can_and_reports_each() {
    let a = engine(GAMEDAY);
    let ua = instance(&a, TOKEN).await;
    let gone = "http://127.0.0.1:9";
    let o = chaosctl(&["kill", "--admin", gone, "--admin", &ua, "--timeout", "3s"]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(a.is_killed(), "the reachable one is killed");
    assert!(out.contains(&format!("ok {ua}: killed")), "{out}");
    assert!(
        out.contains(&format!("failed {gone}: unreachable")),
        "{out}"
    );
}

#[tokio::test]
async fn usage_problems_exit_64_with_the_reason() {
    let o = chaosctl(&["status"]).await;
    assert_eq!(o.status.code(), Some(64));
    assert!(text(&o).contains("no admin endpoint"), "{}", text(&o));
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .args([
            "status",
            "--admin",
            "http://127.0.0.1:9",
            "--token-env",
            "NO_SUCH_TOKEN_VAR",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(text(&o).contains("$NO_SUCH_TOKEN_VAR"), "{}", text(&o));
    let o = chaosctl(&["status", "--admin", "ftp://x"]).await;
    assert_eq!(o.status.code(), Some(64));
    let o = chaosctl(&["--help"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("Exit codes:"));
    let o = chaosctl(&["apply", "--help"]).await;
    assert!(text(&o).contains("Example:"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_against_an_instance_warns_of_rules_that_cannot_fire_there() {
    let chaos = chaos_core::Chaos::new();
    let _backend = chaos_tower::ChaosClientLayer::new(&chaos, "backend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback_service(AdminService::new(&chaos, TOKEN));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        "rules:\n  - { id: backend-down, point: client, target: backnd, fault: { abort: 503 } }\n  - { id: fine, point: client, target: backend, fault: { abort: 503 } }\n",
    )
    .unwrap();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .arg("check")
        .arg(&file)
        .arg("--against")
        .arg(format!("http://{addr}"))
        .env("CHAOS_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "warning: http://{addr}: rule `backend-down`: this instance has no `client` point with target `backnd`; targets this point has seen: backend"
        )),
        "{out}"
    );
    assert!(!out.contains("rule `fine`"), "{out}");
}
