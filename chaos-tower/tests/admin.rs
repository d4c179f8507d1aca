//! The admin API over a real server: auth, every route, bad input keeps the rules; what it
//! tells a fleet: the points and targets an instance has, warnings for rules that cannot
//! fire there, and `/chaos/metrics` for Prometheus.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_tower::admin::AdminService;
use chaos_tower::{ChaosClientLayer, ChaosLayer};
use serde_json::Value;
use tower_layer::Layer;

const TOKEN: &str = "0123456789abcdef-test-token";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn admin(chaos: &Chaos) -> SocketAddr {
    serve(Router::new().fallback_service(AdminService::new(chaos, TOKEN))).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test]
async fn requests_without_the_token_are_refused() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let none = c
        .get(format!("http://{addr}/chaos/rules"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = c
        .post(format!("http://{addr}/chaos/kill"))
        .bearer_auth("0123456789abcdef-test-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let short = c
        .post(format!("http://{addr}/chaos/kill"))
        .bearer_auth("0123")
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 401);
    assert!(!chaos.is_killed(), "an unauthorized kill must do nothing");
}

#[tokio::test]
async fn every_route_works() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");

    let rules = r#"{"rules": [{"id": "a", "point": "server", "fault": {"abort": 503}}]}"#;
    let (s, v) = send(c.put(url("/chaos/rules")).body(rules)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], chaos.version());

    let (s, v) = send(c.post(url("/chaos/rules")).body(
        r#"{"id": "b", "point": "client", "target": "payments", "fault": {"delay": "300ms"}}"#,
    ))
    .await;
    assert_eq!(s, 201, "{v}");

    // YAML when the content type says so.
    let (s, v) = send(
        c.post(url("/chaos/rules"))
            .header("content-type", "application/yaml")
            .body("id: c\npoint: sql\nfault: { error: \"sqlstate:40001\" }\n"),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = send(c.get(url("/chaos/rules"))).await;
    assert_eq!(s, 200);
    let ids: Vec<_> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"]["id"].clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(v["rules"][0]["state"], "active");
    assert_eq!(v["killed"], false);
    // Each rule's cohorts and guard state, over its window.
    let a = &v["rules"][0];
    assert_eq!(a["guard"], "none");
    assert_eq!(a["cohorts"]["window"], "1m");
    for cohort in ["experiment", "control"] {
        assert_eq!(a["cohorts"][cohort]["total_requests"], 0, "{a}");
        assert_eq!(a["cohorts"][cohort]["error_rate"], 0.0);
    }

    // The document in force, as PUT takes it: putting it back changes nothing.
    let (s, doc) = send(c.get(url("/chaos/document"))).await;
    assert_eq!(s, 200);
    assert_eq!(doc["rules"].as_array().unwrap().len(), 3);
    let before = chaos.rules();
    let (s, v) = send(c.put(url("/chaos/rules")).body(doc.to_string())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(chaos.rules(), before);

    let (s, _) = send(c.delete(url("/chaos/rules/b"))).await;
    assert_eq!(s, 200);
    assert_eq!(chaos.rules().rules.len(), 2);

    let (s, v) = send(c.post(url("/chaos/kill"))).await;
    assert_eq!((s, v["killed"].clone()), (200, Value::Bool(true)));
    assert!(chaos.is_killed());
    let (s, v) = send(c.post(url("/chaos/resume"))).await;
    assert_eq!((s, v["killed"].clone()), (200, Value::Bool(false)));
    assert!(!chaos.is_killed());
}

#[tokio::test]
async fn bad_input_is_a_400_with_the_reason_and_the_rules_stay() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");
    send(
        c.put(url("/chaos/rules"))
            .body(r#"{"rules": [{"id": "keep", "point": "server", "fault": {"abort": 503}}]}"#),
    )
    .await;
    let before = chaos.rules();
    let version = chaos.version();

    let (s, v) = send(
        c.put(url("/chaos/rules"))
            .body(r#"{"rules": [{"id": "bad", "point": "server", "fault": {"abort": 99}}]}"#),
    )
    .await;
    assert_eq!(s, 400);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("rule `bad`") && msg.contains("fault.abort"),
        "{msg}"
    );

    let (s, v) = send(c.put(url("/chaos/rules")).body("{not json")).await;
    assert_eq!(s, 400);
    assert!(
        v["error"].as_str().unwrap().contains("line 1 column 2"),
        "{v}"
    );

    let (s, v) = send(
        c.post(url("/chaos/rules"))
            .body(r#"{"id": "keep", "point": "server", "fault": {"abort": 500}}"#),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("duplicate rule id `keep`"),
        "{v}"
    );

    let (s, v) = send(
        c.post(url("/chaos/rules"))
            .body(r#"{"id": "x", "point": "server", "fault": {"delay": "soon"}}"#),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("fault.delay"), "{v}");

    let (s, _) = send(c.put(url("/chaos/rules")).body(vec![b'x'; 2 << 20])).await;
    assert_eq!(s, 413);

    assert_eq!(chaos.rules(), before);
    assert_eq!(chaos.version(), version);
}

#[tokio::test]
async fn unknown_ids_routes_and_methods() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");
    let (s, v) = send(c.delete(url("/chaos/rules/nope"))).await;
    assert_eq!(s, 404);
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
    let (s, _) = send(c.get(url("/chaos/other"))).await;
    assert_eq!(s, 404);
    let res = c
        .get(url("/chaos/kill"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let (s, _) = send(c.patch(url("/chaos/rules"))).await;
    assert_eq!(s, 405);
}

#[test]
#[should_panic(expected = "at least 16 bytes")]
fn a_short_token_is_refused() {
    let _ = AdminService::new(&Chaos::new(), "short");
}

#[tokio::test]
async fn lists_where_maps_belong_and_empty_bodies_are_refused_in_every_format() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");
    let (s, _) = send(
        c.put(url("/chaos/rules"))
            .body(r#"{"rules": [{"id": "keep", "point": "server", "fault": {"abort": 503}}]}"#),
    )
    .await;
    assert_eq!(s, 200);
    let before = chaos.rules();
    let version = chaos.version();

    let bad: &[(&str, &str, &str)] = &[
        // `[]` was read as a document with no rules: every rule removed.
        ("PUT", "application/json", "[]"),
        // `[1, true]` was read as `version: 1, kill_switch: true`.
        ("PUT", "application/json", "[1, true]"),
        ("PUT", "application/yaml", "[1, true]"),
        (
            "PUT",
            "application/json",
            r#"{"rules": [{"id": "a", "point": "server", "match": ["x"], "fault": {"abort": 503}}]}"#,
        ),
        (
            "POST",
            "application/json",
            r#"["a", null, "server", null, {}, {"abort": 503}]"#,
        ),
        // An empty body replaced every rule in YAML and TOML.
        ("PUT", "application/yaml", ""),
        ("PUT", "application/yaml", "  \n"),
        ("PUT", "application/toml", ""),
        ("PUT", "application/toml", "\n\n"),
        ("PUT", "application/json", ""),
        ("POST", "application/yaml", ""),
    ];
    for (method, ct, body) in bad {
        let req = match *method {
            "PUT" => c.put(url("/chaos/rules")),
            _ => c.post(url("/chaos/rules")),
        };
        let (s, v) = send(req.header("content-type", *ct).body(*body)).await;
        assert_eq!(s, 400, "{method} {ct} {body:?}: {v}");
        let reason = v["error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("map") || reason.contains("empty"),
            "{method} {ct} {body:?}: {reason}"
        );
        assert_eq!(chaos.rules(), before, "{method} {ct} {body:?}");
        assert!(!chaos.is_killed(), "{method} {ct} {body:?}");
        assert_eq!(chaos.version(), version, "{method} {ct} {body:?}");
    }
    let (s, v) = send(c.post(url("/chaos/resume"))).await;
    assert_eq!((s, v["killed"].clone()), (200, Value::Bool(false)));

    // Removing every rule is still possible, said explicitly.
    let (s, v) = send(
        c.put(url("/chaos/rules"))
            .body(r#"{"version": 1, "rules": []}"#),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(chaos.rules().rules.is_empty());
}

#[tokio::test]
async fn rules_for_points_and_targets_the_instance_lacks_are_answered_with_warnings() {
    let chaos = Chaos::new();
    // Built, not armed: the adapters declare what they are.
    let _server = ChaosLayer::builder(&chaos).target("checkout").build();
    let _backend = ChaosClientLayer::new(&chaos, "backend");
    let _payments = ChaosClientLayer::new(&chaos, "payments");
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");

    let (s, v) = send(c.get(url("/chaos/rules"))).await;
    assert_eq!(s, 200);
    let known: Vec<String> = v["known_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}/{}",
                k["point"].as_str().unwrap(),
                k["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        known,
        ["client/backend", "client/payments", "server/checkout"]
    );

    // A typo in the target: made, and said.
    let (s, v) = send(c.post(url("/chaos/rules")).body(
        r#"{"id": "backend-down", "point": "client", "target": "backnd", "fault": {"abort": 503}}"#,
    ))
    .await;
    assert_eq!(s, 201, "{v}");
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{v}");
    let w = w[0].as_str().unwrap();
    assert!(
        w.contains("rule `backend-down`") && w.contains("target `backnd`"),
        "{w}"
    );
    assert!(
        w.contains("targets this point has seen: backend, payments"),
        "{w}"
    );
    assert!(w.contains("the change is made"), "{w}");
    assert_eq!(chaos.snapshot().rules.len(), 1, "the rule is in force");

    // A rule every part of which exists: no warning.
    let (s, v) = send(c.post(url("/chaos/rules")).body(
        r#"{"id": "fine", "point": "client", "target": "payments", "fault": {"abort": 503}}"#,
    ))
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]));

    // A whole document: one warning per rule that cannot fire.
    let doc = r#"{"rules": [
        {"id": "a", "point": "server", "fault": {"abort": 503}},
        {"id": "b", "point": "sql", "target": "orders", "fault": {"error": "timeout"}},
        {"id": "c", "point": "server", "target": "checkot", "fault": {"abort": 503}}
    ]}"#;
    let (s, v) = send(c.put(url("/chaos/rules")).body(doc)).await;
    assert_eq!(s, 200, "{v}");
    let w: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with("rule `b`") && w[0].contains("no adapter here uses point `sql`"),
        "{w:?}"
    );
    assert!(
        w[1].starts_with("rule `c`") && w[1].contains("checkout"),
        "{w:?}"
    );
}

#[tokio::test]
async fn a_target_known_per_call_is_known_once_called_armed_or_not() {
    let chaos = Chaos::new();
    assert!(chaos.known_targets().is_empty());
    let out = chaos.inject("queue.publish", "orders", async { 7 }).await;
    assert_eq!(out.unwrap(), 7);
    let known = chaos.known_targets();
    assert_eq!(known.len(), 1);
    assert_eq!(
        (known[0].point.as_str(), known[0].target.as_str()),
        ("queue.publish", "orders")
    );
}

/// The value of the series `name{labels}` (labels as written, in order) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_are_the_engines_counters_in_the_prometheus_text_format() {
    let chaos = Chaos::new();
    chaos
        .replace(
            chaos_core::rules::RuleSet::parse(
                chaos_core::rules::Format::Yaml,
                r#"
rules:
  - id: orders-503
    point: server
    target: shop
    match: { path: /orders }
    fault: { abort: 503 }
    sequence: [abort, pass]
  - id: shadowed
    point: server
    target: 'we"ird\'
    mode: shadow
    match: { path: /never }
    fault: { delay: 10ms }
"#,
            )
            .unwrap(),
        )
        .unwrap();
    let layer = ChaosLayer::builder(&chaos).target("shop").build();
    let app = layer.layer(Router::new().route("/orders", get(|| async { "ok" })));
    let shop = serve(Router::new().fallback_service(app)).await;
    let addr = admin(&chaos).await;
    let c = client();
    for _ in 0..4 {
        let _ = c.get(format!("http://{shop}/orders")).send().await.unwrap();
    }
    // A bad header item: refused, counted by its code.
    let _ = c
        .get(format!("http://{shop}/orders"))
        .header("x-chaos", "bogus=1")
        .send()
        .await
        .unwrap();

    let unauth = c
        .get(format!("http://{addr}/chaos/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let res = c
        .get(format!("http://{addr}/chaos/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    let snap = chaos.snapshot();
    let injected = snap.rules[0].counters.injected;
    // The sequence aborts the first request, then passes (its last step repeats).
    assert_eq!(injected, 1, "{text}");
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no `{s}` in\n{text}"));
    let want: [(&str, f64); 16] = [
        (
            r#"chaos_injections_total{rule="orders-503",fault="abort",point="server",target="shop",mode="inject"}"#,
            1.0,
        ),
        (
            r#"chaos_matched_total{rule="orders-503",point="server",target="shop"}"#,
            5.0,
        ),
        (
            r#"chaos_cohort_requests_total{rule="orders-503",cohort="experiment"}"#,
            1.0,
        ),
        (
            r#"chaos_cohort_errors_total{rule="orders-503",cohort="experiment"}"#,
            1.0,
        ),
        (
            r#"chaos_cohort_requests_total{rule="orders-503",cohort="control"}"#,
            4.0,
        ),
        (
            r#"chaos_cohort_errors_total{rule="orders-503",cohort="control"}"#,
            0.0,
        ),
        // The histogram: cumulative buckets at the otel instrument's bounds, +Inf = _count.
        (
            r#"chaos_cohort_duration_seconds_bucket{rule="orders-503",cohort="control",le="+Inf"}"#,
            4.0,
        ),
        (
            r#"chaos_cohort_duration_seconds_count{rule="orders-503",cohort="control"}"#,
            4.0,
        ),
        (
            r#"chaos_cohort_duration_seconds_bucket{rule="orders-503",cohort="control",le="30"}"#,
            4.0,
        ),
        // A label value with a quote and a backslash is escaped by the encoder.
        (
            r#"chaos_injections_total{rule="shadowed",fault="delay",point="server",target="we\"ird\\",mode="shadow"}"#,
            0.0,
        ),
        (r#"chaos_rule_state{rule="orders-503",state="active"}"#, 1.0),
        (
            r#"chaos_rule_state{rule="orders-503",state="aborted"}"#,
            0.0,
        ),
        ("chaos_kill_switch", 0.0),
        (r#"chaos_header_rejected_total{reason="unknown_key"}"#, 1.0),
        // Counters a rule may count are written from 0, so increase() sees the first.
        (
            r#"chaos_aborts_total{rule="orders-503",reason="guard"}"#,
            0.0,
        ),
        (r#"chaos_known_target{point="server",target="shop"}"#, 1.0),
    ];
    for (series, n) in want {
        assert_eq!(v(series), n, "{series}");
    }
    assert!(v(r#"chaos_cohort_duration_seconds_sum{rule="orders-503",cohort="control"}"#) > 0.0);
    assert!(text.contains("# TYPE chaos_cohort_duration_seconds histogram"));
    assert!(text.contains("# TYPE chaos_injections_total counter"));

    // A manual abort and the kill switch are counted under their reasons.
    chaos.abort_rule("orders-503", "by hand").unwrap();
    chaos.kill();
    let text = c
        .get(format!("http://{addr}/chaos/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        value(
            &text,
            r#"chaos_aborts_total{rule="orders-503",reason="manual"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"chaos_aborts_total{rule="*",reason="kill_switch"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, "chaos_kill_switch"), Some(1.0));
    assert_eq!(
        value(
            &text,
            r#"chaos_rule_state{rule="orders-503",state="killed"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_body_not_in_its_declared_format_is_refused_with_what_was_expected_and_what_came() {
    let chaos = Chaos::new();
    let addr = admin(&chaos).await;
    let c = client();
    let url = format!("http://{addr}/chaos/rules");
    let rule = r#"{"id": "a", "point": "server", "fault": {"abort": 503}}"#;
    // (content-type as sent, body, what the answer must say)
    let cases: &[(Option<&str>, &str, &[&str])] = &[
        // What an HTTP client sends for a "Content-Type" spelled another way: a form body.
        (
            Some("application/x-www-form-urlencoded"),
            "id=a&point=server",
            &[
                "body is not JSON (content-type: application/x-www-form-urlencoded)",
                "expected value at line 1 column 1",
                "`Content-Type: application/json`",
            ],
        ),
        (
            None,
            "id: a",
            &[
                "body is not JSON (no content-type, so JSON)",
                "line 1 column 1",
            ],
        ),
        (
            Some("application/json"),
            r#"{"id": "a",, }"#,
            &[
                "body is not JSON (content-type: application/json)",
                "line 1 column 12",
            ],
        ),
        (
            Some("application/yaml"),
            "id: \"a\npoint: server",
            &["body is not YAML (content-type: application/yaml)", "line "],
        ),
        (
            Some("application/toml"),
            "id = \"a\"\npoint = = server",
            &[
                "body is not TOML (content-type: application/toml)",
                "line 2 column",
            ],
        ),
        (
            Some("Application/YAML; charset=utf-8"),
            "just a sentence",
            &["body is not a YAML map (content-type: Application/YAML; charset=utf-8)"],
        ),
        (
            Some("application/json"),
            "5",
            &["body is not a JSON map (content-type: application/json)"],
        ),
    ];
    for (ct, body, says) in cases {
        let mut req = c.post(&url).body(*body);
        if let Some(ct) = ct {
            req = req.header("content-type", *ct);
        }
        let (s, v) = send(req).await;
        assert_eq!(s, 400, "{ct:?} {body:?}: {v}");
        let reason = v["error"].as_str().unwrap_or_default();
        for part in *says {
            assert!(
                reason.contains(part),
                "{ct:?} {body:?}: {reason:?} lacks {part:?}"
            );
        }
        assert!(chaos.rules().rules.is_empty(), "{ct:?} {body:?}");
    }
    // A body in its format but wrong in a field is refused as before: where and why.
    let (s, v) = send(
        c.post(&url)
            .header("content-type", "application/json")
            .body(r#"{"id": "a", "point": "server", "fault": {"abort": 503}, "rate": "125%"}"#),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let reason = v["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rate") && !reason.contains("body is not"),
        "{reason}"
    );
    // The same rule, declared right, goes in.
    let (s, v) = send(
        c.post(&url)
            .header("Content-Type", "application/json")
            .body(rule),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn the_watched_files_last_reload_is_in_the_rules_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(
        &path,
        "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 150 }\n",
    )
    .unwrap();
    let chaos = Chaos::new();
    let watch = chaos
        .watch_file_with(
            &path,
            chaos_core::reload::WatchOptions::default()
                .debounce(std::time::Duration::from_millis(20)),
        )
        .unwrap();
    let addr = admin(&chaos).await;
    let c = client();
    let url = |p: &str| format!("http://{addr}{p}");

    let (s, v) = send(c.get(url("/chaos/rules"))).await;
    assert_eq!(s, 200);
    let last = &v["last_reload"];
    assert_eq!(last["outcome"], "refused", "{v}");
    assert_eq!(last["source"], path.display().to_string());
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("rate 150 is above 1"),
        "{last}"
    );
    assert!(last["at"].as_str().unwrap().ends_with('Z'), "{last}");
    let metrics = || async {
        let res = c
            .get(url("/chaos/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        res.text().await.unwrap()
    };
    let text = metrics().await;
    assert_eq!(
        value(&text, "chaos_reload_failures_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "chaos_reloads_total"), Some(0.0));
    assert_eq!(value(&text, "chaos_last_reload_success"), Some(0.0));
    let at = value(&text, "chaos_last_reload_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - at).abs() < 60.0, "{at} vs {now}");

    // Fixed: loaded, and the gauge says so.
    let tmp = dir.path().join("rules.tmp");
    std::fs::write(
        &tmp,
        "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 15% }\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while watch.reloads() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the fixed file was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_, v) = send(c.get(url("/chaos/rules"))).await;
    assert_eq!(v["last_reload"]["outcome"], "loaded", "{v}");
    assert_eq!(v["last_reload"]["version"], v["version"]);
    let text = metrics().await;
    assert_eq!(
        value(&text, "chaos_last_reload_success"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "chaos_reloads_total"), Some(1.0));
    assert_eq!(value(&text, "chaos_reload_failures_total"), Some(1.0));
}

#[tokio::test]
async fn no_watched_file_no_reload_series() {
    let chaos = Chaos::new();
    let (_, v) = {
        let addr = admin(&chaos).await;
        send(client().get(format!("http://{addr}/chaos/rules"))).await
    };
    assert!(v["last_reload"].is_null(), "{v}");
    let text = chaos_tower::admin::metrics_text(&chaos);
    assert_eq!(value(&text, "chaos_last_reload_success"), None, "{text}");
    assert_eq!(value(&text, "chaos_reload_failures_total"), Some(0.0));
}
