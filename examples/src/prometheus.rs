//! A real Prometheus for the fleet programs and tests: Debian's `prometheus` package (2.42
//! here), started on a free loopback port with a generated config, a 1 s scrape interval
//! and a temporary data directory, and stopped when dropped (also when a test panics).
//!
//! It scrapes one job, `checkout-admin`: `/chaos/metrics` on each admin port, with the
//! admin token, from a file of targets it watches, so instances can come and go while it
//! runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The scrape job of the admin endpoints.
pub const JOB: &str = "checkout-admin";

/// How often it scrapes.
pub const SCRAPE: Duration = Duration::from_secs(1);

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Option<Child>,
    url: String,
    dir: tempfile::TempDir,
}

/// The `prometheus` binary, if installed: on `PATH`, else Debian's `/usr/bin/prometheus`.
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = Path::new("/usr/bin/prometheus");
        p.is_file().then(|| p.to_path_buf())
    })
}

/// For a test: whether Prometheus is installed. Without it the test says so and should
/// return; under `CI=true` its absence fails the test instead.
///
/// # Panics
///
/// Under `CI=true` without Prometheus.
pub fn available_for_test() -> bool {
    if binary().is_some() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{MISSING}");
    eprintln!("skipped: {MISSING}");
    false
}

/// What to tell someone without Prometheus.
pub const MISSING: &str = "Prometheus is not installed: `apt-get install prometheus` (Debian's package, 2.42), or put a `prometheus` binary on PATH";

impl Prometheus {
    /// Starts Prometheus scraping `admins` with `token`; ready when this returns.
    ///
    /// # Errors
    ///
    /// When the binary is missing, or it does not answer ready within 30 s (its log is in
    /// the message).
    pub async fn start(admins: &[SocketAddr], token: &str) -> Result<Prometheus, String> {
        let bin = binary().ok_or(MISSING)?;
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let port = free_port()?;
        let config = format!(
            "global:\n  scrape_interval: {s}s\n  scrape_timeout: {s}s\n  evaluation_interval: {s}s\n\
             scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /chaos/metrics\n    \
             authorization:\n      credentials: {token:?}\n    \
             file_sd_configs:\n      - files: [{targets:?}]\n        refresh_interval: 1s\n",
            s = SCRAPE.as_secs(),
            targets = dir.path().join("targets.json").display().to_string(),
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)
            .map_err(|e| format!("writing the config: {e}"))?;
        let mut p = Prometheus {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        p.set_targets(admins)?;
        let log = std::fs::File::create(p.dir.path().join("prometheus.log"))
            .map_err(|e| format!("the log file: {e}"))?;
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                p.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                p.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting prometheus: {e}"))?;
        p.child = Some(child);
        p.wait_ready().await?;
        Ok(p)
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the job's targets (it sees the change within a second or two).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn set_targets(&self, admins: &[SocketAddr]) -> Result<(), String> {
        let targets: Vec<String> = admins.iter().map(ToString::to_string).collect();
        let body = serde_json::json!([{ "targets": targets }]).to_string();
        // Written whole, then renamed, so it never reads half a file.
        let tmp = self.dir.path().join("targets.json.tmp");
        std::fs::write(&tmp, body).map_err(|e| format!("writing the targets: {e}"))?;
        std::fs::rename(&tmp, self.dir.path().join("targets.json"))
            .map_err(|e| format!("writing the targets: {e}"))
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        for _ in 0..300 {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("prometheus exited ({status}): {}", self.log()));
            }
            if let Ok(r) = http.get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("prometheus was not ready in 30s: {}", self.log()))
    }

    /// Waits until the job has `n` targets whose last scrape succeeded (at most 30 s).
    ///
    /// # Errors
    ///
    /// When they are not up by then, with what Prometheus says of them.
    pub async fn wait_up(&self, n: usize) -> Result<(), String> {
        self.wait_targets(n, true).await
    }

    /// Waits until the job lists `n` active targets, whatever their health (at most 30 s).
    ///
    /// # Errors
    ///
    /// When it does not by then, with what Prometheus says of them.
    pub async fn wait_listed(&self, n: usize) -> Result<(), String> {
        self.wait_targets(n, false).await
    }

    /// Waits until `n` active targets are listed (`up`: and their last scrape succeeded).
    async fn wait_targets(&self, n: usize, up: bool) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..300 {
            let v = self.api("/api/v1/targets?state=active").await?;
            let count = v["data"]["activeTargets"].as_array().map_or(0, |t| {
                t.iter().filter(|t| !up || t["health"] == "up").count()
            });
            if count >= n {
                return Ok(());
            }
            last = v.to_string();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let what = if up { "up" } else { "listed" };
        Err(format!("fewer than {n} targets {what} after 30s: {last}"))
    }

    /// An instant query: its `data.result`.
    ///
    /// # Errors
    ///
    /// When Prometheus cannot be reached or refuses the query.
    pub async fn query(&self, q: &str) -> Result<serde_json::Value, String> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &[("query", q)])
                .map_err(|e| e.to_string())?;
        let v = self.get(url.as_str()).await?;
        if v["status"] != "success" {
            return Err(format!("`{q}`: {v}"));
        }
        Ok(v["data"]["result"].clone())
    }

    async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        self.get(&format!("{}{path}", self.url)).await
    }

    async fn get(&self, url: &str) -> Result<serde_json::Value, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let res = http.get(url).send().await.map_err(|e| e.to_string())?;
        res.json().await.map_err(|e| e.to_string())
    }

    /// Stops it now (as when its host goes away).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on loopback now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}
