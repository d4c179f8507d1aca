//! `chaosctl`: the GameDay commander's tool.
//!
//! Checks and signs on its own; drives the chaos admin API (chaos-tower, feature `admin`)
//! of one or many instances at once; runs experiments to a verdict. See
//! `chaosctl --help`, the guide, and [`reference_experiment`] for every field of the
//! experiment file. The library is the binary's, and lets a program run
//! an experiment the way `chaosctl run` does ([`experiment`]), as the workspace's
//! `gameday` demo does.

mod admin;
mod check;
mod code;
mod experiment_file;
mod fleet;
mod html;
mod out;
mod prom;
mod run;
mod sign;

/// Running an experiment from a program, as `chaosctl run` does.
pub mod experiment {
    pub use crate::run::{RunArgs, Verdict, run, run_with_report};

    /// Reads and checks an experiment file as `chaosctl run` does before it runs (the
    /// schema, the rules it injects, its probes, queries and abort conditions), without
    /// running it.
    ///
    /// # Errors
    ///
    /// What `chaosctl run` would refuse it for: the file, and the position or field.
    pub fn check(path: &std::path::Path) -> Result<(), String> {
        crate::experiment_file::load(path).map(drop)
    }
}

/// The experiment file `chaosctl run` reads: every field, with what it does. The same
/// schema reads from YAML, JSON or TOML; the tests load this file in all three. The rules
/// in `method.rules` (or `method.rules_file`) are the rules schema of chaos-core's
/// `rules::reference`.
///
/// ```yaml
#[doc = include_str!("../reference-experiment.yaml")]
/// ```
pub mod reference_experiment {}

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::fleet::FleetArgs;

/// The smallest experiment file `chaosctl run --help` shows (indented as it shows it).
macro_rules! minimal_experiment {
    () => {
        "  title: Checkout survives a slow payments service
  hypothesis: Checkout answers 2xx while payments is slow for canary traffic.
  steady_state:
    probes:
      - name: checkout
        url: http://127.0.0.1:8080/checkout
        tolerance: { error_rate_below: 1%, p99_below: 500ms }
  method:
    admins: [http://127.0.0.1:9901]
    rules:
      - id: payments-slow
        point: client
        target: payments
        fault: { delay: 300ms }
    duration: 30s
"
    };
}

const AFTER_HELP: &str = "\
Exit codes:
  0   everything asked was done
  1   a file was refused, or an instance refused or could not be reached
      (apply puts every instance back to what it had)
  64  the command line or its environment is wrong

chaosctl run exits with its verdict: 0 held, 1 refuted, 2 aborted, 3 error.

Colours are used on a terminal only, and never with NO_COLOR set.";

/// The GameDay commander's tool: check and sign rules, and drive the chaos admin API of
/// many instances at once.
#[derive(Debug, Parser)]
#[command(name = "chaosctl", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate rules files and print the normalised rules as a table.
    #[command(after_help = "Example:\n  chaosctl check rules.yaml staging.toml\n  \
        chaosctl check rules.yaml --against http://10.0.0.5:9901\n\n\
        Exits 1 with the file, line, column, rule and field of the first problem. With \
        --against, warns of each rule whose point and target that instance has never seen \
        (a typo in `target`): such a rule cannot fire there.")]
    Check {
        /// Rules files (.yaml, .yml, .json, .toml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// An admin endpoint to hold the rules against (repeat for many).
        #[arg(long, value_name = "ADMIN")]
        against: Vec<String>,
        /// The environment variable that holds the admin token, with --against.
        #[arg(long, default_value = "CHAOS_ADMIN_TOKEN")]
        token_env: String,
    },
    /// Sign an x-chaos value: print the two headers, ready for curl.
    #[command(after_help = "Example:\n  \
        CHAOS_SIGNING_KEY=... chaosctl sign --ttl 10m 'delay=300ms;point=client;target=payments'\n\n\
        Prints `x-chaos: ...` and `x-chaos-signature: t=...,v1=...`.")]
    Sign {
        /// The environment variable that holds the signing key.
        #[arg(long, default_value = "CHAOS_SIGNING_KEY")]
        key_env: String,
        /// How long the signature is good for.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The x-chaos value.
        value: String,
    },
    /// Rules, states, cohorts and guards of every instance, and the fleet's sum.
    #[command(after_help = "Example:\n  \
        chaosctl status --admin http://10.0.0.5:9901 --admin http://10.0.0.6:9901 --json")]
    Status {
        #[command(flatten)]
        fleet: FleetArgs,
        /// JSON for scripts instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Replace every instance's rules with a file's, all or nothing.
    #[command(
        after_help = "Example:\n  chaosctl apply gameday.yaml --admins fleet.txt\n\n\
        The file is checked first. If any instance refuses it (or cannot be reached), every \
        instance that took it is put back to the document it had."
    )]
    Apply {
        /// The rules file.
        file: PathBuf,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Add one rule (a file holding one rule) to every instance.
    #[command(
        after_help = "Example:\n  chaosctl add payments-slow.yaml --admin http://127.0.0.1:9901\n\n\
        If an instance refuses it, the instances that took it remove it again."
    )]
    Add {
        /// A file holding one rule.
        file: PathBuf,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Remove a rule from every instance.
    #[command(after_help = "Example:\n  chaosctl remove payments-slow --admins fleet.txt")]
    Remove {
        /// The rule id.
        id: String,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Turn the kill switch on everywhere it can be reached: nothing more is injected.
    #[command(after_help = "Example:\n  chaosctl kill --admins fleet.txt\n\n\
        Reaches every instance it can and reports each; exits 1 if any was missed.")]
    Kill {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Run an experiment: baseline, inject, observe, roll back, recover, and a verdict.
    #[command(
        after_help = concat!("Example:\n  chaosctl run checkout-payments-slow.yaml --junit report.xml\n\n\
        A minimal experiment file (every field, with what it does: chaosctl/reference-experiment.yaml \
        in the repository, also in chaosctl's crate docs):\n\n",
        minimal_experiment!(),
        "\n\
        The probes carry the run's scenario (x-chaos: scenario=...) and x-test-traffic: 1; the \
        rules are scoped to that scenario, so only the probes are touched.\n\n\
        Verdicts and exit codes: 0 held (every probe and query within tolerance while faults \
        were in), 1 refuted (a check broke: a finding), 2 aborted (an abort condition or a \
        rule's guard fired, or Prometheus could not judge), 3 error (the run could not be \
        done, or its rules injected nothing: nothing was tested). The rollback always runs, \
        also on abort, error or Ctrl-C; a run that cannot roll back says so and exits 3.")
    )]
    Run {
        /// The experiment file (.yaml, .yml, .json, .toml).
        file: PathBuf,
        /// The environment variable that holds the admin token.
        #[arg(long, default_value = "CHAOS_ADMIN_TOKEN")]
        token_env: String,
        /// The report as JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit report (a test case per probe, per query, and for the injections).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the report as one self-contained HTML page with a timeline chart.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Turn the kill switch off everywhere.
    #[command(after_help = "Example:\n  chaosctl resume --admins fleet.txt")]
    Resume {
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

/// The command line, as the `chaosctl` binary runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                code::USAGE
            } else {
                code::OK
            });
        }
    };
    let out = match cli.command {
        Command::Check {
            files,
            against,
            token_env,
        } => check::run(&files, &against, &token_env),
        Command::Sign {
            key_env,
            ttl,
            value,
        } => sign::run(&key_env, ttl, &value),
        Command::Status { fleet, json } => fleet::block_on(fleet, |f| f.status(json)),
        Command::Apply { file, fleet } => fleet::block_on(fleet, |f| f.apply(file)),
        Command::Add { file, fleet } => fleet::block_on(fleet, |f| f.add(file)),
        Command::Remove { id, fleet } => fleet::block_on(fleet, |f| f.remove(id)),
        Command::Kill { fleet } => fleet::block_on(fleet, |f| f.switch(true)),
        Command::Resume { fleet } => fleet::block_on(fleet, |f| f.switch(false)),
        Command::Run {
            file,
            token_env,
            json,
            junit,
            html,
        } => run::main(run::RunArgs {
            file,
            token_env,
            token: None,
            json,
            junit,
            html,
        }),
    };
    ExitCode::from(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_minimal_experiment_run_help_shows_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minimal.yaml");
        std::fs::write(&path, minimal_experiment!()).unwrap();
        let (x, rules) = crate::experiment_file::load(&path).unwrap();
        assert_eq!(x.steady_state.probes.len(), 1);
        assert_eq!(rules[0].id, "payments-slow");
    }
}
