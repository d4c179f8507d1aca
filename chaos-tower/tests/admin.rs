//! The admin API over a real server: auth, every route, bad input keeps the rules.

use std::net::SocketAddr;

use axum::Router;
use chaos_core::Chaos;
use chaos_tower::admin::AdminService;
use serde_json::Value;

const TOKEN: &str = "0123456789abcdef-test-token";

async fn admin(chaos: &Chaos) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback_service(AdminService::new(chaos, TOKEN));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
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
    assert!(v["error"].as_str().unwrap().contains("1:2"), "{v}");

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
