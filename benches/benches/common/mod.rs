//! Shared by the benches: criterion's estimates read back and printed as ratios.

/// Where criterion wrote this run's estimates (the directory holding `PROBE`), if it did.
fn criterion_root(probe: &str) -> Option<std::path::PathBuf> {
    let dirs = [
        std::env::var("CARGO_TARGET_DIR")
            .map(|d| format!("{d}/criterion"))
            .unwrap_or_default(),
        "target/criterion".to_owned(),
        "../target/criterion".to_owned(),
    ];
    dirs.iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join(probe).is_dir())
}

/// The median criterion estimated for the bench whose directory is `dir`, in ns.
fn median_ns(root: &std::path::Path, dir: &str) -> Option<f64> {
    let path = root.join(dir).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// The settings of the benches that run in paired interleaved rounds (layer, floor): short
/// measurements, many rounds, so the parts and the layer cases are timed alike.
#[allow(dead_code)]
pub(crate) fn rounds_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_millis(600))
}

/// The runtime the paired benches drive their services on, as one `axum::serve` worker.
#[allow(dead_code)]
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

/// Interleaved rounds of every case: `ROUNDS`, default 5.
#[allow(dead_code)]
pub(crate) fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints, for each of `names` (benched as `GROUP/rROUND/NAME` in `rounds` interleaved
/// rounds, each right after its pair `GROUP/rROUND/NAME-bare`), the median over the rounds
/// of its time and of its ratio to its pair's. Prints nothing under `cargo test
/// --benches`, which runs each bench once and writes no estimates.
#[allow(dead_code)]
pub(crate) fn print_round_ratios(group: &str, rounds: usize, names: &[String]) {
    let Some(first) = names.first() else { return };
    let Some(root) = criterion_root(&format!("{group}_r0_{first}")) else {
        return;
    };
    let at = |r: usize, name: &str| median_ns(&root, &format!("{group}_r{r}_{name}"));
    println!(
        "\n{:<34} {:>10} {:>8}   ({rounds} interleaved rounds, medians)",
        format!("{group}/…"),
        "time",
        "× bare"
    );
    for name in names {
        let (mut times, mut ratios) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            if let (Some(t), Some(b)) = (at(r, name), at(r, &format!("{name}-bare"))) {
                times.push(t);
                ratios.push(t / b);
            }
        }
        if times.is_empty() {
            continue;
        }
        println!(
            "{name:<34} {:>8.1}ns {:>8.2}",
            median(times),
            median(ratios)
        );
    }
}

/// Prints each `GROUP/NAME` median as a ratio to the first name's, read from criterion's
/// estimates of this run. Prints nothing under `cargo test --benches`, which runs each
/// bench once and writes no estimates.
#[allow(dead_code)]
pub(crate) fn print_ratios(group: &str, names: &[&str]) {
    let Some(first) = names.first() else { return };
    let Some(root) = criterion_root(&format!("{group}_{first}")) else {
        return;
    };
    let median = |name: &str| median_ns(&root, &format!("{group}_{name}"));
    let Some(base) = median(first) else { return };
    println!(
        "\n{:<34} {:>10} {:>8}",
        format!("{group}/…"),
        "median",
        format!("× {first}")
    );
    for name in names {
        if let Some(m) = median(name) {
            println!("{name:<34} {:>8.1}ns {:>8.2}", m, m / base);
        }
    }
}
