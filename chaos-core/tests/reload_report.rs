//! A refused reload is never silent: every distinct refusal is logged (only repeats of one
//! error are rate-limited), and the last reload's outcome is in the engine's API. Its own
//! binary: it installs a global subscriber to read what the watch thread logs.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use chaos_core::Chaos;
use chaos_core::reload::{ReloadOutcome, WatchOptions};

fn write(path: &Path, text: &str) {
    // Written beside and renamed, as an editor or a ConfigMap swap does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn refused(chaos: &Chaos) -> Option<String> {
    match chaos.last_reload()?.outcome {
        ReloadOutcome::Refused { error } => Some(error),
        _ => None,
    }
}

#[test]
fn every_distinct_refusal_is_reported_and_the_last_outcome_is_kept() {
    let logs = support::Logs::default();
    tracing::subscriber::set_global_default(logs.subscriber()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    let good = "rules:\n  - { id: a, point: server, fault: { abort: 503 } }\n";
    // At start-up a bad file leaves no rules in force, and says so.
    write(
        &path,
        "rules:\n  - { id: a, point: server, falt: { abort: 503 } }\n",
    );
    let chaos = Chaos::new();
    let watch = chaos
        .watch_file_with(
            &path,
            WatchOptions::default().debounce(Duration::from_millis(20)),
        )
        .unwrap();
    let first = refused(&chaos).expect("the first read is refused");
    assert!(first.contains("falt"), "{first}");
    assert_eq!(
        logs.lines_with("no rules in force").len(),
        1,
        "{}",
        logs.text()
    );
    assert!(!logs.text().contains("keeping the last good rules"));

    // A different mistake three seconds later (well inside the old 10 s rate limit) is
    // reported too: before, nothing was printed and nothing else said the file was bad.
    std::thread::sleep(Duration::from_secs(3));
    write(
        &path,
        "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 150 }\n",
    );
    wait_for("the second refusal", || watch.failures() == 2);
    let second = refused(&chaos).unwrap();
    assert!(second.contains("rate 150 is above 1"), "{second}");
    assert!(second.contains("write `25%` or `0.25`"), "{second}");
    assert_eq!(
        logs.lines_with("rules file refused").len(),
        2,
        "{}",
        logs.text()
    );
    assert_eq!(
        logs.lines_with("rate 150 is above 1").len(),
        1,
        "{}",
        logs.text()
    );

    // The same error again (the file changed, its mistake did not): rate-limited.
    write(
        &path,
        "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 150 }\n# again\n",
    );
    wait_for("the third refusal", || watch.failures() == 3);
    assert_eq!(
        logs.lines_with("rules file refused").len(),
        2,
        "{}",
        logs.text()
    );

    // Loaded: the outcome says so, with the version, and a later refusal keeps it.
    write(&path, good);
    wait_for("the load", || chaos.rules().rules.len() == 1);
    let loaded = chaos.last_reload().unwrap();
    assert!(loaded.is_loaded());
    assert_eq!(
        loaded.outcome,
        ReloadOutcome::Loaded {
            version: chaos.version()
        }
    );
    assert_eq!(loaded.source, path.display().to_string());
    let age = std::time::SystemTime::now()
        .duration_since(loaded.at.0)
        .unwrap();
    assert!(age < Duration::from_secs(20), "{age:?}");

    write(
        &path,
        "rules:\n  - { id: a, point: server, fault: { abort: 503 }, rate: 150 }\n",
    );
    wait_for("the refusal after a load", || watch.failures() == 4);
    assert_eq!(chaos.rules().rules.len(), 1, "the last good rules stay");
    assert!(
        logs.text()
            .contains("the rules in force stay (1 rule, version 1)"),
        "a refusal after a load is logged again, as it follows a load: {}",
        logs.text()
    );
    let snap = serde_json::to_value(chaos.snapshot()).unwrap();
    assert_eq!(snap["last_reload"]["outcome"], "refused", "{snap}");
    assert!(
        snap["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("rate 150")
    );

    // A file that cannot be read is a refusal too.
    std::fs::remove_file(&path).unwrap();
    wait_for("the unreadable file", || watch.failures() == 5);
    assert!(refused(&chaos).unwrap().contains("cannot read"));
    assert_eq!(chaos.rules().rules.len(), 1);
}
