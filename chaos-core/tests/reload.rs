//! Hot reload from a watched file: plain replace, Kubernetes ConfigMap symlink swaps, bad
//! writes (last good rules kept), deletes, and `CHAOS_RULES` from the environment.
//!
//! These tests use the real clock (the watcher is a thread on inotify), with generous
//! bounds: they poll until the expected state holds, or fail after 20 seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use chaos_core::reload::WatchOptions;
use chaos_core::{Chaos, Event};

const WAIT: Duration = Duration::from_secs(20);

fn rules(id: &str) -> String {
    format!("rules:\n  - id: {id}\n    point: server\n    fault: {{ abort: 503 }}\n")
}

fn ids(chaos: &Chaos) -> Vec<String> {
    chaos.rules().rules.into_iter().map(|r| r.id).collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn opts() -> WatchOptions {
    WatchOptions::default()
        .debounce(Duration::from_millis(50))
        .recheck(Duration::from_secs(60))
}

/// Writes a file the way editors and config tools do: to a temporary name, then renamed.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_replaced_file_replaces_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, rules("first")).unwrap();
    let chaos = Chaos::new();
    let watch = chaos.watch_file_with(&path, opts()).unwrap();
    assert_eq!(ids(&chaos), ["first"], "loaded before watch_file returns");
    write_atomic(&path, &rules("second"));
    wait_until("second rules", || ids(&chaos) == ["second"]);
    std::fs::write(&path, rules("third")).unwrap(); // in place, too
    wait_until("third rules", || ids(&chaos) == ["third"]);
    assert_eq!(watch.reloads(), 3);
    assert_eq!(watch.failures(), 0);
}

#[cfg(unix)]
#[test]
fn configmap_symlink_swaps_are_followed_every_time() {
    use std::os::unix::fs::symlink;
    // The layout kubelet writes: rules.yaml -> ..data/rules.yaml, ..data -> ..<timestamp>/
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let swap_to = |n: usize, id: &str| {
        let ts = root.join(format!("..2026_11_22_{n}"));
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("rules.yaml"), rules(id)).unwrap();
        let tmp = root.join("..data_tmp");
        symlink(format!("..2026_11_22_{n}"), &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
        if n > 0 {
            std::fs::remove_dir_all(root.join(format!("..2026_11_22_{}", n - 1))).unwrap();
        }
    };
    swap_to(0, "v0");
    symlink("..data/rules.yaml", root.join("rules.yaml")).unwrap();

    let chaos = Chaos::new();
    let _watch = chaos
        .watch_file_with(root.join("rules.yaml"), opts())
        .unwrap();
    assert_eq!(ids(&chaos), ["v0"]);
    for (n, id) in [(1, "v1"), (2, "v2"), (3, "v3")] {
        swap_to(n, id);
        wait_until(id, || ids(&chaos) == [id]);
    }
}

#[test]
fn a_bad_write_keeps_the_last_good_rules_until_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, rules("good-1")).unwrap();
    let chaos = Chaos::new();
    let mut events = chaos.subscribe();
    let watch = chaos.watch_file_with(&path, opts()).unwrap();

    // A partial write (cut mid-document), then a write with a bad value.
    let full = rules("good-2");
    std::fs::write(&path, &full[..full.len() - 12]).unwrap();
    wait_until("the partial write refused", || watch.failures() >= 1);
    assert_eq!(ids(&chaos), ["good-1"]);
    write_atomic(&path, &rules("bad").replace("abort: 503", "abort: 999"));
    wait_until("the bad write refused", || watch.failures() >= 2);
    assert_eq!(ids(&chaos), ["good-1"], "last good rules in force");
    let err = watch.last_error().unwrap();
    assert!(err.contains("rules.yaml:4:"), "{err}");
    assert!(
        err.ends_with("rule `bad`, field `fault.abort`: abort status 999 is outside 200..=599"),
        "{err}"
    );
    assert_eq!(chaos.snapshot().stats.reload_failures, 2);
    let failed = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, Event::ReloadFailed { .. }))
        .count();
    assert_eq!(failed, 2);

    write_atomic(&path, &rules("good-2"));
    wait_until("good-2", || ids(&chaos) == ["good-2"]);
    assert!(watch.last_error().is_none());
}

#[test]
fn a_deleted_file_keeps_the_rules_and_a_new_one_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(
        &path,
        r#"{"rules":[{"id":"j1","point":"server","fault":{"abort":503}}]}"#,
    )
    .unwrap();
    let chaos = Chaos::new();
    let watch = chaos.watch_file_with(&path, opts()).unwrap();
    assert_eq!(ids(&chaos), ["j1"]);
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ids(&chaos), ["j1"]);
    std::fs::write(
        &path,
        r#"{"rules":[{"id":"j2","point":"server","fault":{"abort":503}}]}"#,
    )
    .unwrap();
    wait_until("j2", || ids(&chaos) == ["j2"]);
    drop(watch);
    // After the watch is dropped, changes are no longer followed.
    std::fs::write(&path, r#"{"rules":[]}"#).unwrap(); // a valid document: would apply if watched
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ids(&chaos), ["j2"]);
}

/// The rules file is a symlink into another directory, and the change is made there: the
/// directory watch sees no event, so only the periodic re-check can pick it up. A control
/// engine with a slow re-check proves the event path did not.
#[cfg(unix)]
#[test]
fn the_periodic_recheck_catches_changes_without_events() {
    let watched = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("real.toml");
    let toml = |id: &str| {
        format!("[[rules]]\nid = \"{id}\"\npoint = \"server\"\nfault = {{ abort = 503 }}\n")
    };
    std::fs::write(&target, toml("t1")).unwrap();
    let link = watched.path().join("rules.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let fast = Chaos::new();
    let _w1 = fast
        .watch_file_with(
            &link,
            WatchOptions::default()
                .debounce(Duration::from_millis(20))
                .recheck(Duration::from_millis(100)),
        )
        .unwrap();
    let control = Chaos::new();
    let _w2 = control.watch_file_with(&link, opts()).unwrap();
    assert_eq!(ids(&fast), ["t1"]);
    assert_eq!(ids(&control), ["t1"]);

    std::fs::write(&target, toml("t2")).unwrap();
    wait_until("t2 by the re-check", || ids(&fast) == ["t2"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ids(&control),
        ["t1"],
        "no event reached the watcher; only the re-check sees the change"
    );
}

#[test]
fn watching_a_missing_directory_is_an_error() {
    let e = Chaos::new()
        .watch_file("/nonexistent-chaos-dir/rules.yaml")
        .unwrap_err();
    assert!(e.is_io(), "{e}");
}

/// Runs `from_env_child` in a child process with the environment set (setting variables in
/// this process would race with the other tests).
#[test]
fn chaos_rules_and_chaos_disabled_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    for disabled in ["0", "1"] {
        std::fs::write(&path, rules("from-env")).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "from_env_child", "--ignored", "--nocapture"])
            .env("CHAOS_RULES", &path)
            .env("CHAOS_DISABLED", disabled)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
    }
}

#[test]
#[ignore = "run by chaos_rules_and_chaos_disabled_from_the_environment in a child process"]
fn from_env_child() {
    let chaos = Chaos::from_env();
    assert_eq!(ids(&chaos), ["from-env"]);
    let disabled = std::env::var("CHAOS_DISABLED").unwrap() == "1";
    assert_eq!(chaos.is_killed(), disabled);
    chaos.resume();
    assert_eq!(
        chaos.is_killed(),
        disabled,
        "CHAOS_DISABLED cannot be resumed"
    );
    // The watch lives as long as the engine.
    std::fs::write(std::env::var("CHAOS_RULES").unwrap(), rules("changed")).unwrap();
    wait_until("changed", || ids(&chaos) == ["changed"]);
}
