//! Every rules, rule and experiment snippet of the README and the guide (`docs/`) is
//! loaded as what it says it is; the Rust ones are doctests (`guide` in `src/lib.rs`).
//!
//! A YAML, JSON or TOML block says what it holds after its language: ```` ```yaml rules````
//! (a rules document), `rule` (one rule, as `POST /chaos/rules` takes it), `experiment`
//! (a `chaosctl run` file), `prometheus` (a Prometheus configuration: its scrape
//! configs must read as a list of jobs), `map` (a resilience map, as `Explore` checks
//! one), or `json output` (what a program prints: it must
//! parse).
//! A block that says nothing, or something else, fails this test, so no snippet goes
//! unchecked.

use std::path::{Path, PathBuf};

use chaos_core::rules::{Format, Rule, RuleSet, parse_document};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Markdown files the snippets live in.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        root().join("README.md"),
        root().join("examples/chaostoolkit/README.md"),
    ];
    let mut guide: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    guide.sort();
    assert!(guide.len() >= 8, "the guide's chapters: {guide:?}");
    pages.extend(guide);
    pages
}

struct Snippet {
    at: String,
    info: String,
    text: String,
}

/// The fenced code blocks of a page, with where each starts.
fn snippets(page: &Path) -> Vec<Snippet> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page
        .strip_prefix(root())
        .unwrap_or(page)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut open: Option<Snippet> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Snippet {
                    at: format!("{name}:{}", i + 1),
                    info: info.trim().to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), Some("")) => out.push(open.take().unwrap()),
            (Some(s), _) => {
                s.text.push_str(line);
                s.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{name}: a code block is not closed");
    out
}

#[test]
fn every_rules_and_experiment_snippet_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = std::collections::BTreeMap::<String, usize>::new();
    for page in pages() {
        for s in snippets(&page) {
            let mut words = s.info.split_whitespace();
            let format = match words.next() {
                Some("yaml") => Format::Yaml,
                Some("json") => Format::Json,
                Some("toml") => Format::Toml,
                _ => continue,
            };
            let kind = words.next().unwrap_or("");
            let result = match kind {
                "rules" => RuleSet::parse(format, &s.text)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                "rule" => Rule::parse(format, &s.text)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                "experiment" => {
                    let ext = match format {
                        Format::Json => "json",
                        Format::Toml => "toml",
                        _ => "yaml",
                    };
                    let file = dir.path().join(format!("snippet.{ext}"));
                    std::fs::write(&file, &s.text).unwrap();
                    chaosctl::experiment::check(&file)
                }
                "prometheus" => parse_document::<serde_json::Value>(format, &s.text, None)
                    .map_err(|e| e.to_string())
                    .and_then(|v| match v["scrape_configs"].as_array() {
                        Some(jobs) if jobs.iter().all(|j| j["job_name"].is_string()) => Ok(()),
                        _ => Err("no `scrape_configs` list of jobs with a `job_name`".into()),
                    }),
                "map" if format == Format::Yaml => {
                    chaos_core::testing::ResilienceMap::parse(&s.text)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                "output" if format == Format::Json => {
                    serde_json::from_str::<serde_json::Value>(&s.text)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                "output" => Err("only JSON output is checked: show other output as `text`".into()),
                "cargo" if format == Format::Toml => cargo_lines(&s.text),
                "cargo" => Err("a Cargo.toml snippet is TOML".into()),
                other => Err(format!(
                    "say what the block holds after its language: rules, rule, experiment, prometheus, (YAML only) map, (TOML only) cargo or (JSON only) output (got {other:?})"
                )),
            };
            if let Err(e) = result {
                panic!("{} ({}): {e}\n{}", s.at, s.info, s.text);
            }
            *loaded.entry(kind.to_owned()).or_default() += 1;
        }
    }
    // The pages hold each kind: this test cannot pass by finding none.
    for kind in [
        "rules",
        "rule",
        "experiment",
        "prometheus",
        "output",
        "cargo",
        "map",
    ] {
        assert!(
            loaded.get(kind).is_some_and(|n| *n > 0),
            "no {kind} snippet: {loaded:?}"
        );
    }
}

/// A `toml cargo` block: the lines a snippet needs in an application's `Cargo.toml`
/// (under `[dependencies]` unless it names `[dev-dependencies]`), which `scripts/newcomer`
/// builds. Each of this workspace's crates is a path dependency on a checkout beside the
/// application, `../chaos/CRATE`, with only features that crate has.
fn cargo_lines(text: &str) -> Result<(), String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let mut deps = Vec::new();
    for (k, v) in &doc {
        match (k.as_str(), v) {
            ("dependencies" | "dev-dependencies", toml::Value::Table(t)) => deps.extend(t),
            _ => deps.push((k, v)),
        }
    }
    for (name, spec) in deps {
        if !name.starts_with("chaos-") {
            continue;
        }
        let path = spec.get("path").and_then(toml::Value::as_str);
        if path != Some(&format!("../chaos/{name}")) {
            return Err(format!(
                "{name}: depend on it as path = \"../chaos/{name}\", got {spec}"
            ));
        }
        let manifest: toml::Table = std::fs::read_to_string(root().join(name).join("Cargo.toml"))
            .map_err(|e| format!("{name}: {e}"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))?;
        let features = manifest.get("features").and_then(toml::Value::as_table);
        for f in spec
            .get("features")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = f.as_str().unwrap_or("");
            if !features.is_some_and(|t| t.contains_key(f)) {
                return Err(format!("{name} has no feature `{f}`"));
            }
        }
    }
    Ok(())
}
