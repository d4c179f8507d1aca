//! What the example programs share: the demo's checkout (the `gameday` program's system,
//! and what `tests/explore.rs` explores), running an experiment file as `chaosctl run`
//! does, a fleet of replicas on loopback and a real Prometheus to judge it (the `fleet`
//! program and its test).

pub mod checkout;
pub mod fleet;
pub mod prometheus;

/// The workspace README and the guide's chapters (`docs/`), every Rust example in them
/// compiled and run as a doctest (here, the crate whose dependencies cover them all).
/// Their rules and experiment snippets are loaded by `tests/docs.rs`.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../README.md")]
    pub struct Readme;
    #[doc = include_str!("../../docs/rules.md")]
    pub struct Rules;
    #[doc = include_str!("../../docs/headers.md")]
    pub struct Headers;
    #[doc = include_str!("../../docs/adapters.md")]
    pub struct Adapters;
    #[doc = include_str!("../../docs/experiments.md")]
    pub struct Experiments;
    #[doc = include_str!("../../docs/testing.md")]
    pub struct Testing;
    #[doc = include_str!("../../docs/exploring.md")]
    pub struct Exploring;
    #[doc = include_str!("../../docs/dashboards.md")]
    pub struct Dashboards;
    #[doc = include_str!("../../docs/production.md")]
    pub struct Production;
    #[doc = include_str!("../../docs/chaosctl.md")]
    pub struct Chaosctl;
    #[doc = include_str!("../../docs/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../../docs/verification.md")]
    pub struct Verification;
    #[doc = include_str!("../../docs/README.md")]
    pub struct Guide;
    #[doc = include_str!("../chaostoolkit/README.md")]
    pub struct ChaosToolkit;
}

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
