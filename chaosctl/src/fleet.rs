//! The admin API of many instances at once: parallel, with one deadline for all.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use chaos_core::rules::{Format, Rule, RuleSet};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{AdminClient, Reply, normalise, route};
use crate::code;
use crate::out::{bold, mark, say, table};
use crate::prom::Prometheus;

/// Which admin endpoints, and how to talk to them.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// An admin endpoint's base URL (repeat for many).
    #[arg(long = "admin", value_name = "URL")]
    pub(crate) admins: Vec<String>,
    /// A file of admin base URLs, one per line (`#` comments and blank lines skipped).
    #[arg(long = "admins", value_name = "FILE")]
    pub(crate) admins_file: Option<PathBuf>,
    /// Find the admin endpoints through Prometheus: the active, healthy targets of the
    /// scrape job `--job` (which scrapes `/chaos/metrics` on every admin port).
    #[arg(long = "admins-from-prometheus", value_name = "URL", requires = "job")]
    pub(crate) prometheus: Option<String>,
    /// The scrape job, with `--admins-from-prometheus`.
    #[arg(long, value_name = "NAME", requires = "prometheus")]
    pub(crate) job: Option<String>,
    /// The environment variable that holds a bearer token for Prometheus, if it needs one.
    #[arg(long, value_name = "VAR")]
    pub(crate) prometheus_token_env: Option<String>,
    /// The environment variable that holds the admin token.
    #[arg(long, default_value = "CHAOS_ADMIN_TOKEN")]
    pub(crate) token_env: String,
    /// The deadline for the whole fan-out.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

/// The instances and the client that reaches them.
pub(crate) struct Fleet {
    urls: Vec<String>,
    admin: AdminClient,
    deadline: tokio::time::Instant,
}

/// Runs a fleet command on a runtime of its own; a usage problem is exit 64, no instance
/// found through Prometheus exit 1.
pub(crate) fn block_on<F, Fut>(args: FleetArgs, f: F) -> u8
where
    F: FnOnce(Fleet) -> Fut,
    Fut: Future<Output = u8>,
{
    let Some(rt) = crate::out::runtime() else {
        return code::FAILED;
    };
    rt.block_on(async move {
        match Fleet::new(args).await {
            Ok(fleet) => f(fleet).await,
            Err((code, why)) => {
                eprintln!("chaosctl: {why}");
                code
            }
        }
    })
}

/// Reads the admin URLs of `--admin` and `--admins FILE`, or asks Prometheus.
async fn urls(args: &FleetArgs) -> Result<Vec<String>, (u8, String)> {
    let usage = |why: String| (code::USAGE, why);
    let mut urls = args.admins.clone();
    if let Some(file) = &args.admins_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if let (Some(base), Some(job)) = (&args.prometheus, &args.job) {
        if !urls.is_empty() {
            return Err(usage(
                "give --admin/--admins or --admins-from-prometheus, not both".into(),
            ));
        }
        let token = args
            .prometheus_token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok());
        let prom = Prometheus::new(base, token).map_err(usage)?;
        let (found, said) = prom.instances(job).await.map_err(|e| (code::FAILED, e))?;
        eprintln!("chaosctl: {said}");
        return Ok(found);
    }
    if urls.is_empty() {
        return Err(usage(
            "no admin endpoint: give --admin URL (repeatable), --admins FILE, or --admins-from-prometheus URL --job NAME".into(),
        ));
    }
    normalise(&mut urls).map_err(usage)?;
    Ok(urls)
}

impl Fleet {
    async fn new(args: FleetArgs) -> Result<Fleet, (u8, String)> {
        let token = std::env::var(&args.token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                (
                    code::USAGE,
                    format!(
                        "the admin token is read from ${}, which is unset or empty",
                        args.token_env
                    ),
                )
            })?;
        let admin = AdminClient::new(token).map_err(|e| (code::FAILED, e))?;
        let urls = urls(&args).await?;
        Ok(Fleet {
            urls,
            admin,
            deadline: tokio::time::Instant::now() + args.timeout,
        })
    }

    /// One request to one instance, within the fleet's deadline.
    async fn call(&self, url: &str, method: Method, path: &str, body: Option<String>) -> Reply {
        let left = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        self.admin.call(url, method, path, body, left).await
    }

    /// The same request to every instance, in parallel; the replies in the fleet's order.
    async fn all(&self, method: &Method, path: &str, body: Option<&str>) -> Vec<Reply> {
        let calls = self
            .urls
            .iter()
            .map(|u| self.call(u, method.clone(), path, body.map(str::to_owned)));
        join_all(calls).await
    }

    /// Prints one line per instance; `true` when every one succeeded.
    fn report(&self, what: &str, replies: &[Reply], ok_text: impl Fn(&Value) -> String) -> bool {
        for (u, r) in self.urls.iter().zip(replies) {
            match r {
                Reply::Ok(v) => say!("{} {u}: {what} {}", mark("ok", true), ok_text(v)),
                other => say!("{} {u}: {}", mark("failed", false), other.describe()),
            }
        }
        replies.iter().all(Reply::is_ok)
    }

    pub(crate) async fn switch(self, kill: bool) -> u8 {
        let path = if kill { route::KILL } else { route::RESUME };
        let replies = self.all(&Method::POST, path, None).await;
        let ok = self.report(if kill { "killed" } else { "resumed" }, &replies, |v| {
            format!("(killed: {})", v["killed"])
        });
        if ok { code::OK } else { code::FAILED }
    }

    pub(crate) async fn remove(self, id: String) -> u8 {
        let replies = self.all(&Method::DELETE, &route::rule(&id), None).await;
        let ok = self.report(&format!("removed `{id}`"), &replies, version);
        if ok { code::OK } else { code::FAILED }
    }

    pub(crate) async fn add(self, file: PathBuf) -> u8 {
        let rule = match read_rule(&file) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{} {e}", mark("refused", false));
                return code::FAILED;
            }
        };
        let body = serde_json::to_string(&rule).expect("a rule serializes");
        let replies = self.all(&Method::POST, route::RULES, Some(&body)).await;
        self.print_warnings(&replies);
        if self.report(&format!("added `{}`", rule.id), &replies, version) {
            return code::OK;
        }
        // All or nothing: take it back from those that took it.
        say!("{}", bold("taking the rule back where it was added:"));
        let path = route::rule(&rule.id);
        let took: Vec<_> = self
            .urls
            .iter()
            .zip(&replies)
            .filter(|(_, r)| r.is_ok())
            .map(|(u, _)| u.clone())
            .collect();
        let undo = join_all(
            took.iter()
                .map(|u| self.call(u, Method::DELETE, &path, None)),
        )
        .await;
        self.report_undo(&took, &undo);
        code::FAILED
    }

    pub(crate) async fn apply(self, file: PathBuf) -> u8 {
        let set = match RuleSet::from_file(&file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{} {e}", mark("refused", false));
                return code::FAILED;
            }
        };
        let body = set
            .to_string(Format::Json)
            .expect("a rule set serializes to JSON");
        // What each instance has now, to put it back if any refuses.
        let saved = self.all(&Method::GET, route::DOCUMENT, None).await;
        if !saved.iter().all(Reply::is_ok) {
            say!(
                "{}",
                bold("not applied: every instance must be reachable first")
            );
            self.report("has", &saved, |v| {
                format!("{} rules", v["rules"].as_array().map_or(0, Vec::len))
            });
            return code::FAILED;
        }
        let replies = self.all(&Method::PUT, route::RULES, Some(&body)).await;
        self.print_warnings(&replies);
        if self.report(&format!("applied {}", file.display()), &replies, version) {
            return code::OK;
        }
        say!(
            "{}",
            bold("refused somewhere: putting back what each instance had")
        );
        let (took, docs): (Vec<_>, Vec<_>) = self
            .urls
            .iter()
            .zip(&replies)
            .zip(&saved)
            .filter(|((_, r), _)| r.is_ok())
            .map(|((u, _), s)| match s {
                Reply::Ok(doc) => (u.clone(), doc.to_string()),
                _ => unreachable!("every instance was read"),
            })
            .unzip();
        let undo = join_all(
            took.iter()
                .zip(&docs)
                .map(|(u, d)| self.call(u, Method::PUT, route::RULES, Some(d.clone()))),
        )
        .await;
        self.report_undo(&took, &undo);
        code::FAILED
    }

    /// The warnings of a rule change, per instance: rules that cannot fire there.
    fn print_warnings(&self, replies: &[Reply]) {
        for (u, r) in self.urls.iter().zip(replies) {
            for w in r.warnings() {
                say!("{} {u}: {w}", mark("warning:", false));
            }
        }
    }

    fn report_undo(&self, urls: &[String], undo: &[Reply]) {
        for (u, r) in urls.iter().zip(undo) {
            match r {
                Reply::Ok(_) => say!("{} {u}: put back", mark("ok", true)),
                other => say!(
                    "{} {u}: COULD NOT BE PUT BACK, fix it by hand: {}",
                    mark("FAILED", false),
                    other.describe()
                ),
            }
        }
    }

    pub(crate) async fn status(self, json_out: bool) -> u8 {
        let replies = self.all(&Method::GET, route::RULES, None).await;
        let fleet = sum(&replies);
        if json_out {
            let instances: Vec<_> = self
                .urls
                .iter()
                .zip(&replies)
                .map(|(u, r)| match r {
                    Reply::Ok(v) => json!({ "admin": u, "ok": true, "snapshot": v }),
                    other => json!({ "admin": u, "ok": false, "error": other.describe() }),
                })
                .collect();
            say!(
                "{}",
                serde_json::to_string_pretty(&json!({ "instances": instances, "fleet": fleet }))
                    .expect("JSON")
            );
        } else {
            for (u, r) in self.urls.iter().zip(&replies) {
                match r {
                    Reply::Ok(v) => print_instance(u, v),
                    other => say!("{} {u}: {}\n", mark("failed", false), other.describe()),
                }
            }
            print_fleet(&fleet, self.urls.len());
        }
        if replies.iter().all(Reply::is_ok) {
            code::OK
        } else {
            code::FAILED
        }
    }
}

fn version(v: &Value) -> String {
    format!("(version {})", v["version"])
}

/// A file holding one rule, in the format its extension says.
fn read_rule(file: &PathBuf) -> Result<Rule, String> {
    let name = file.display();
    let format = Format::from_path(file)
        .ok_or_else(|| format!("{name}: expected a .json, .toml, .yaml or .yml file"))?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?;
    Rule::parse(format, &text).map_err(|e| format!("{name}: {e}"))
}

/// The fleet's sum, per rule id: states, counters, cohorts, guard states.
fn sum(replies: &[Reply]) -> Value {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let (mut killed, mut reached) = (0, 0);
    for r in replies {
        let Reply::Ok(snap) = r else { continue };
        reached += 1;
        if snap["killed"] == true {
            killed += 1;
        }
        for rule in snap["rules"].as_array().into_iter().flatten() {
            let id = rule["rule"]["id"].as_str().unwrap_or("?").to_owned();
            let e = rules.entry(id.clone()).or_insert_with(|| {
                json!({ "id": id, "instances": 0, "states": {}, "guards": {},
                        "matched": 0, "injected": 0,
                        "experiment": { "requests": 0, "errors": 0 },
                        "control": { "requests": 0, "errors": 0 } })
            });
            add(&mut e["instances"], 1);
            let state = rule["state"].as_str().unwrap_or("?");
            add(&mut e["states"][state], 1);
            let guard = rule["guard"].as_str().unwrap_or("none");
            add(&mut e["guards"][guard], 1);
            for k in ["matched", "injected"] {
                add(&mut e[k], rule["counters"][k].as_u64().unwrap_or(0));
            }
            for c in ["experiment", "control"] {
                for k in ["requests", "errors"] {
                    let n = rule["cohorts"][c][format!("total_{k}")]
                        .as_u64()
                        .unwrap_or(0);
                    add(&mut e[c][k], n);
                }
            }
        }
    }
    json!({ "reached": reached, "killed": killed, "rules": rules.into_values().collect::<Vec<_>>() })
}

fn add(slot: &mut Value, n: u64) {
    *slot = json!(slot.as_u64().unwrap_or(0) + n);
}

fn cohort(c: &Value) -> String {
    let p99 = c["p99"].as_str().unwrap_or("-");
    format!(
        "{}/{} p99 {p99}",
        c["total_requests"].as_u64().unwrap_or(0),
        c["total_errors"].as_u64().unwrap_or(0)
    )
}

fn print_instance(url: &str, snap: &Value) {
    let killed = snap["killed"] == true;
    let service = snap["service_guard"]["state"].as_str().unwrap_or("none");
    say!(
        "{} {url}: version {}, kill switch {}, service guard {service}",
        mark("ok", true),
        snap["version"],
        if killed {
            mark("ON", false)
        } else {
            "off".into()
        },
    );
    let mut rows = vec![
        [
            "RULE",
            "STATE",
            "MATCHED",
            "INJECTED",
            "EXPERIMENT req/err",
            "CONTROL req/err",
            "GUARD",
            "RAMP",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in snap["rules"].as_array().into_iter().flatten() {
        let state = r["state"].as_str().unwrap_or("?");
        let ramp = match &r["ramp"] {
            Value::Null => "-".to_owned(),
            v => format!("step {} ({})", v["step"], v["rate"].as_str().unwrap_or("?")),
        };
        rows.push(vec![
            r["rule"]["id"].as_str().unwrap_or("?").to_owned(),
            mark(state, state == "active"),
            r["counters"]["matched"].to_string(),
            r["counters"]["injected"].to_string(),
            cohort(&r["cohorts"]["experiment"]),
            cohort(&r["cohorts"]["control"]),
            r["guard"].as_str().unwrap_or("none").to_owned(),
            ramp,
        ]);
        if let Some(why) = r["abort_reason"].as_str() {
            rows.push(vec![format!("  ↳ {why}")]);
        }
    }
    table(&rows);
    say!();
}

fn print_fleet(fleet: &Value, instances: usize) {
    say!(
        "{}",
        bold(&format!(
            "fleet: {} of {instances} reached, kill switch on at {}",
            fleet["reached"], fleet["killed"]
        ))
    );
    let mut rows = vec![
        [
            "RULE",
            "INSTANCES",
            "STATES",
            "MATCHED",
            "INJECTED",
            "EXPERIMENT req/err",
            "CONTROL req/err",
            "GUARDS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let counts = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    for r in fleet["rules"].as_array().into_iter().flatten() {
        let pair = |c: &str| format!("{}/{}", r[c]["requests"], r[c]["errors"]);
        rows.push(vec![
            r["id"].as_str().unwrap_or("?").to_owned(),
            r["instances"].to_string(),
            counts(&r["states"]),
            r["matched"].to_string(),
            r["injected"].to_string(),
            pair("experiment"),
            pair("control"),
            counts(&r["guards"]),
        ]);
    }
    table(&rows);
}
