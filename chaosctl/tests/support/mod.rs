//! What more than one test of `chaosctl` needs.

#![allow(dead_code, unreachable_pub)]

/// The page after a real headless browser (Debian's chromium) loaded it: its DOM.
/// Without chromium the page is read as written, unless `CHAOS_REQUIRE_CHROMIUM` says a
/// browser must check it (`.ci/run` installs one and sets it).
pub(crate) fn rendered(page: &std::path::Path) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("CHAOS_REQUIRE_CHROMIUM").is_none(),
            "CHAOS_REQUIRE_CHROMIUM is set and no chromium is installed"
        );
        eprintln!("no chromium here: the page is checked as written, not as rendered");
        return std::fs::read_to_string(page).unwrap();
    };
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}
