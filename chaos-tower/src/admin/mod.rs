//! The control API (feature `admin`): a tower service to mount on an internal port.
//!
//! | route | does | answers |
//! |---|---|---|
//! | `GET /chaos/rules` | rules with their state and counters, engine counters, the points and targets this process has (`known_targets`) | 200, the engine's [`Snapshot`](chaos_core::Snapshot) as JSON |
//! | `GET /chaos/document` | the rules document in force, as `PUT /chaos/rules` takes it (`chaosctl apply` keeps it to put it back) | 200, the [`RuleSet`](chaos_core::rules::RuleSet) as JSON |
//! | `PUT /chaos/rules` | replaces every rule (a rules document) | 200 `{"version": N, "warnings": [...]}`; 400 with the reason, rules unchanged |
//! | `POST /chaos/rules` | adds one rule | 201 `{"version": N, "warnings": [...]}`; 400 with the reason (bad rule, id taken) |
//! | `DELETE /chaos/rules/{id}` | removes a rule | 200 `{"version": N}`; 404 for an unknown id |
//! | `POST /chaos/kill` | kill switch on: nothing injected, in-flight delays and hangs released | 200 `{"killed": true}` |
//! | `POST /chaos/resume` | kill switch off | 200 `{"killed": false}` (stays `true` under `CHAOS_DISABLED`) |
//! | `GET /chaos/metrics` | the engine's figures for Prometheus to scrape ([`metrics_text`]: the names the `otel` instruments get from the OpenTelemetry Prometheus exporter) | 200, text format 0.0.4 |
//!
//! Prometheus scrapes `/chaos/metrics` with the token in its scrape config:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: checkout-admin
//!     metrics_path: /chaos/metrics
//!     authorization: { credentials_file: /etc/prometheus/chaos-admin-token }
//!     static_configs: [{ targets: ["10.0.0.5:9901", "10.0.0.6:9901"] }]
//! ```
//!
//! `warnings` names each rule whose point and target this process has never seen
//! ([`Chaos::target_warnings`](chaos_core::Chaos::target_warnings)): such a rule cannot fire here (a typo in `target` is the
//! usual cause). The change is made all the same.
//!
//! Every request needs `Authorization: Bearer TOKEN` (compared in constant time); without
//! it the answer is 401. Bodies are JSON, or YAML / TOML when the `content-type` says so
//! (`application/yaml`, `application/toml`), at most 1 MiB (413 above). Errors are
//! `{"error": "..."}` with the precise reason, e.g.
//! `{"error": "<string>:1:56: rule `a`, field `fault.abort`: ..."}`. A body that is not a
//! document of the format its `content-type` declares says so, with the content type that
//! arrived and where it failed: `body is not JSON (content-type:
//! application/x-www-form-urlencoded): expected value at line 1 column 1; ...` (what an
//! HTTP client sends when its `Content-Type` header is spelled in a way it does not
//! recognise). Unknown routes get 404, known routes with another method 405.
//!
//! ```no_run
//! use axum::Router;
//! use chaos_core::Chaos;
//! use chaos_tower::admin::AdminService;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let chaos = Chaos::from_env();
//! let admin = AdminService::new(&chaos, std::env::var("CHAOS_ADMIN_TOKEN").unwrap());
//! let internal = tokio::net::TcpListener::bind("127.0.0.1:9901").await?;
//! axum::serve(internal, Router::new().fallback_service(admin)).await
//! # }
//! ```

mod metrics;
mod service;

pub use self::metrics::metrics_text;
pub use self::service::AdminService;
