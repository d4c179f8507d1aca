//! `chaosctl check`: validate rules files, print the normalised rules.

use std::path::PathBuf;

use chaos_core::rules::{DEFAULT_TTL, Dur, Rule, RuleSet};

use crate::code;
use crate::out::{mark, say, table};

pub(crate) fn run(files: &[PathBuf]) -> u8 {
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
            }
            Err(e) => {
                failed = true;
                eprintln!("{} {e}", mark("refused", false));
            }
        }
    }
    if failed { code::FAILED } else { code::OK }
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
