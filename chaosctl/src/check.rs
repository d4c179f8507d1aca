//! `chaosctl check`: validate rules files, print the normalised rules.

use std::path::PathBuf;
use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::rules::{DEFAULT_TTL, Dur, Rule, RuleSet};
use reqwest::Method;

use crate::admin::{AdminClient, normalise, route};
use crate::code;
use crate::out::{mark, say, table};

/// `against`: admin URLs whose points and targets the rules are held against, with the
/// environment variable of the admin token.
pub(crate) fn run(files: &[PathBuf], against: &[String], token_env: &str) -> u8 {
    let known = match known_targets(against, token_env) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("chaosctl: {e}");
            return code::FAILED;
        }
    };
    let mut failed = false;
    for file in files {
        match RuleSet::from_file(file) {
            Ok(set) => {
                say!(
                    "{} {}: {} rules",
                    mark("ok", true),
                    file.display(),
                    set.rules.len()
                );
                print(&set);
                for (url, chaos) in &known {
                    for w in chaos.target_warnings(&set.rules) {
                        say!("{} {url}: {w}", mark("warning:", false));
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{} {e}", mark("refused", false));
            }
        }
    }
    if failed { code::FAILED } else { code::OK }
}

/// Each instance's points and targets (from its `GET /chaos/rules`), declared on an engine
/// of its own so the engine's own check says which rules cannot fire there.
fn known_targets(urls: &[String], token_env: &str) -> Result<Vec<(String, Chaos)>, String> {
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let mut urls = urls.to_vec();
    normalise(&mut urls)?;
    let token = std::env::var(token_env)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!("the admin token is read from ${token_env}, which is unset or empty")
        })?;
    let admin = AdminClient::new(token)?;
    let rt = crate::out::runtime().ok_or("cannot start")?;
    rt.block_on(async {
        let mut out = Vec::new();
        for u in urls {
            let snap = admin
                .call(&u, Method::GET, route::RULES, None, Duration::from_secs(10))
                .await
                .into_result(&u)?;
            let chaos = Chaos::new();
            for k in snap["known_targets"].as_array().into_iter().flatten() {
                chaos.declare(
                    k["point"].as_str().unwrap_or_default(),
                    k["target"].as_str().unwrap_or_default(),
                );
            }
            out.push((u, chaos));
        }
        Ok(out)
    })
}

/// The rules as a table: id, point, target, match, fault, rate, limits, expiry.
pub(crate) fn print(set: &RuleSet) {
    let default_ttl = set.defaults.ttl.map_or(Dur(DEFAULT_TTL), |d| d);
    let mut rows = vec![
        [
            "ID", "POINT", "TARGET", "MATCH", "FAULT", "RATE", "LIMITS", "EXPIRY", "GUARD",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &set.rules {
        rows.push(vec![
            r.id.clone(),
            r.point.clone(),
            r.target.clone().unwrap_or_else(|| "*".into()),
            matcher(r),
            r.fault.to_string(),
            rate(r),
            limits(r),
            expiry(r, default_ttl),
            guard(r),
        ]);
    }
    table(&rows);
}

fn matcher(r: &Rule) -> String {
    if r.matcher.is_empty() {
        return "-".into();
    }
    // Each condition as `field value`, headers by name: short enough for a column.
    let v = serde_json::to_value(&r.matcher).unwrap_or_default();
    let Some(m) = v.as_object() else {
        return "?".into();
    };
    m.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k} {s}"),
            serde_json::Value::Array(a) => {
                let items: Vec<_> = a.iter().map(|x| x.as_str().unwrap_or("?")).collect();
                format!("{k} {}", items.join("|"))
            }
            serde_json::Value::Object(o) => {
                let names: Vec<_> = o.keys().map(String::as_str).collect();
                format!("{k} {}", names.join(","))
            }
            other => format!("{k} {other}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn rate(r: &Rule) -> String {
    let mut s = r.rate.to_string();
    if let Some(ramp) = &r.ramp {
        let steps: Vec<_> = ramp.steps.iter().map(ToString::to_string).collect();
        s = format!("ramp {} /{}", steps.join(","), ramp.every);
    }
    if let Some(k) = &r.sticky_by {
        s.push_str(&format!(" by {k}"));
    }
    if r.mode == chaos_core::rules::Mode::Shadow {
        s.push_str(" (shadow)");
    }
    s
}

fn limits(r: &Rule) -> String {
    let mut l = Vec::new();
    if let Some(n) = r.max_active {
        l.push(format!("max_active {n}"));
    }
    if let Some(n) = r.max_hits {
        l.push(format!("max_hits {n}"));
    }
    if let Some(n) = r.max_errors {
        l.push(format!("max_errors {n}"));
    }
    if let Some(seq) = &r.sequence {
        l.push(format!("sequence of {}", seq.len()));
    }
    if let Some(n) = r.first {
        l.push(format!("first {n}"));
    }
    if let Some(n) = r.every {
        l.push(format!("every {n}"));
    }
    if l.is_empty() {
        "-".into()
    } else {
        l.join(", ")
    }
}

fn expiry(r: &Rule, default_ttl: Dur) -> String {
    match (r.ttl, &r.expires_at) {
        (Some(t), _) => format!("ttl {t}"),
        (None, Some(at)) => format!("at {at}"),
        (None, None) => format!("ttl {default_ttl} (default)"),
    }
}

fn guard(r: &Rule) -> String {
    let Some(g) = &r.guard else {
        return "-".into();
    };
    let mut parts = Vec::new();
    if let Some(x) = g.error_rate_above {
        parts.push(format!("errors > {x}"));
    }
    if let Some(x) = g.p99_above {
        parts.push(format!("p99 > {x}"));
    }
    if let Some(v) = &g.vs_control {
        if let Some(x) = v.error_rate_increase_above {
            parts.push(format!("errors > control + {x}"));
        }
        if let Some(x) = v.p99_ratio_above {
            parts.push(format!("p99 > {x}x control"));
        }
    }
    format!("{} /{}", parts.join(", "), g.window)
}
