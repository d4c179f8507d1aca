//! Shared by the benches: criterion's estimates read back and printed as ratios.

/// Prints each `GROUP/NAME` median as a ratio to the first name's, read from criterion's
/// estimates of this run. Prints nothing under `cargo test --benches`, which runs each
/// bench once and writes no estimates.
pub(crate) fn print_ratios(group: &str, names: &[&str]) {
    let Some(first) = names.first() else { return };
    let dirs = [
        std::env::var("CARGO_TARGET_DIR")
            .map(|d| format!("{d}/criterion"))
            .unwrap_or_default(),
        "target/criterion".to_owned(),
        "../target/criterion".to_owned(),
    ];
    let Some(root) = dirs
        .iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join(format!("{group}_{first}")).is_dir())
    else {
        return;
    };
    let median = |name: &str| -> Option<f64> {
        let path = root
            .join(format!("{group}_{name}"))
            .join("new/estimates.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
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
