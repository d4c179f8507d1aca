//! The Chaos Toolkit recipe (`examples/chaostoolkit/experiment.json`) run by Chaos Toolkit
//! itself (`chaostoolkit` 1.19.0 from PyPI, its `http` provider) against a real checkout on
//! loopback: it adds a rule through the admin API, probes tagged and untagged traffic, and
//! rolls the rule back.
//!
//! Needs Chaos Toolkit: `scripts/test` makes a virtualenv with it (`target/chaostoolkit`)
//! and names its `chaos` in `CHAOSTOOLKIT`. Without it these tests say so and pass, except
//! under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_examples::fleet::{Fleet, TOKEN};
use serde_json::Value;

const RECIPE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/chaostoolkit/experiment.json");

/// Chaos Toolkit's `chaos`, or `None` (said) when it is missing outside CI.
fn chaos_toolkit() -> Option<PathBuf> {
    let bin = std::env::var_os("CHAOSTOOLKIT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/chaostoolkit/bin/chaos"),
        PathBuf::from,
    );
    if bin.is_file() {
        return Some(bin);
    }
    let why = format!(
        "Chaos Toolkit is missing ({}): scripts/test installs chaostoolkit 1.19.0 in a virtualenv",
        bin.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// Runs an experiment (its JSON) with Chaos Toolkit against `fleet`'s one checkout, the
/// rollbacks always played; its journal and exit code.
async fn run(ctk: &Path, fleet: &Fleet, experiment: &str) -> (Value, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("experiment.json");
    std::fs::write(&file, experiment).unwrap();
    let journal = dir.path().join("journal.json");
    let r = &fleet.replicas[0];
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(ctk)
            .current_dir(dir.path())
            .env("CHECKOUT_URL", format!("http://{}/checkout", r.app))
            .env("CHAOS_ADMIN_URL", format!("http://{}", r.admin))
            .env("CHAOS_ADMIN_TOKEN", TOKEN)
            .env("NO_PROXY", "127.0.0.1")
            .args(["--no-log-file", "run", "--rollback-strategy", "always"])
            .arg("--journal-path")
            .arg(&journal)
            .arg(&file)
            .output(),
    )
    .await
    .expect("Chaos Toolkit finished within 120 s")
    .expect("Chaos Toolkit ran");
    let text = std::fs::read_to_string(&journal).unwrap_or_else(|e| {
        panic!(
            "no journal ({e}); chaos said:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (serde_json::from_str(&text).unwrap(), out.status.code())
}

/// The output of the after-method probe called `name`.
fn after<'a>(journal: &'a Value, name: &str) -> &'a Value {
    journal["steady_states"]["after"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["activity"]["name"] == name)
        .map(|p| &p["output"])
        .unwrap_or_else(|| panic!("no probe {name} after the method: {journal:#}"))
}

fn method_output(journal: &Value) -> &Value {
    &journal["run"][0]["output"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipe_holds_with_the_fallback_deviates_without_and_always_rolls_back() {
    let Some(ctk) = chaos_toolkit() else { return };
    let recipe = std::fs::read_to_string(RECIPE).unwrap();
    let fleet = Fleet::start(1).await;
    let engine = &fleet.replicas[0].chaos;

    // With checkout's fallback: the rule goes in, canaries get "pay later", real traffic
    // is untouched, the hypothesis holds.
    fleet.set_fallback(true);
    let (j, code) = run(&ctk, &fleet, &recipe).await;
    assert_eq!(
        (j["status"].as_str(), j["deviated"].as_bool(), code),
        (Some("completed"), Some(false), Some(0)),
        "{j:#}"
    );
    assert_eq!(method_output(&j)["status"], 201, "{j:#}");
    let tagged = after(&j, "tagged-checkout-answers-200");
    assert_eq!(
        (&tagged["status"], tagged["body"].as_str()),
        (&Value::from(200), Some("pay later")),
        "the fault fired for the canary: {j:#}"
    );
    let untagged = after(&j, "untagged-checkout-answers-200");
    assert_eq!(untagged["body"].as_str(), Some("paid"), "{j:#}");
    assert_eq!(j["rollbacks"][0]["output"]["status"], 200, "{j:#}");
    assert!(engine.rules().rules.is_empty(), "the rollback left a rule");

    // Without it: the canaries get 502, the run deviates, and the rollback still runs.
    fleet.set_fallback(false);
    let (j, code) = run(&ctk, &fleet, &recipe).await;
    assert_eq!(
        (j["status"].as_str(), j["deviated"].as_bool()),
        (Some("completed"), Some(true)),
        "{j:#}"
    );
    assert_ne!(code, Some(0), "a deviated run fails its CI job");
    assert_eq!(
        after(&j, "tagged-checkout-answers-200")["status"],
        502,
        "{j:#}"
    );
    assert_eq!(
        after(&j, "untagged-checkout-answers-200")["status"],
        200,
        "{j:#}"
    );
    assert!(engine.rules().rules.is_empty(), "the rollback left a rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_spelled_otherwise_is_sent_as_a_form_and_refused_with_the_reason() {
    let Some(ctk) = chaos_toolkit() else { return };
    let recipe = std::fs::read_to_string(RECIPE).unwrap();
    // Chaos Toolkit sends JSON only for a header spelled exactly `Content-Type`.
    let misspelled = recipe.replace("\"Content-Type\":", "\"content-type\":");
    assert_ne!(misspelled, recipe);
    let fleet = Fleet::start(1).await;
    fleet.set_fallback(false);
    let (j, code) = run(&ctk, &fleet, &misspelled).await;
    let added = method_output(&j);
    assert_eq!(added["status"], 400, "{j:#}");
    let reason = added["body"]["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("body is not JSON (content-type: application/json)")
            && reason.contains("line 1 column 1"),
        "{reason}"
    );
    // Nothing was injected, and the run says "completed": the trap the recipe warns of.
    assert_eq!(
        (j["status"].as_str(), j["deviated"].as_bool(), code),
        (Some("completed"), Some(false), Some(0)),
        "{j:#}"
    );
    let tagged = after(&j, "tagged-checkout-answers-200");
    assert_eq!(tagged["body"].as_str(), Some("paid"), "{j:#}");
    assert!(fleet.replicas[0].chaos.rules().rules.is_empty());
}
