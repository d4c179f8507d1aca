//! What the example programs share: running an experiment file as `chaosctl run` does, a
//! fleet of replicas on loopback and a real Prometheus to judge it (the `fleet` program
//! and its test).

pub mod fleet;
pub mod prometheus;

use chaosctl::experiment::{RunArgs, Verdict};

/// Runs an experiment (its YAML, written to a temporary file called `name`) as
/// `chaosctl run` does, with the admin `token`, printing its report: the verdict and the
/// JSON report.
///
/// # Panics
///
/// When the temporary file cannot be written.
pub async fn run_experiment(name: &str, body: &str, token: &str) -> (Verdict, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, body).expect("the experiment written");
    chaosctl::experiment::run_with_report(RunArgs {
        file,
        token_env: String::new(),
        token: Some(token.to_owned()),
        json: false,
        junit: None,
        html: None,
    })
    .await
}
