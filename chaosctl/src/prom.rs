//! Prometheus's HTTP API, as far as `chaosctl` asks it: instant queries, and the targets of
//! a scrape job (where the admin endpoints are).

use std::time::Duration;

use serde_json::Value;

use crate::admin::{error_chain, http_client};

/// How long one question to Prometheus may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A Prometheus server.
#[derive(Clone, Debug)]
pub(crate) struct Prometheus {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What an instant query answered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// One series (its labels, `{}` for none) or a scalar (no labels): its value (NaN
    /// included, as Prometheus gives it).
    One(String, f64),
    /// No series: nothing to judge.
    Nothing,
    /// Several series, each named by its labels (`{instance="a:1"}`), with its value.
    Several(Vec<(String, f64)>),
}

impl Prometheus {
    /// `base` is the server's URL (`http://127.0.0.1:9090`); `token` goes as a bearer token.
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Prometheus, String> {
        let parsed =
            reqwest::Url::parse(base).map_err(|e| format!("`{base}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{base}` is not an http(s) URL"));
        }
        Ok(Prometheus {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: http_client()?,
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// A GET on the API: the `data` of a `success`, or why not.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), params)
            .map_err(|e| format!("Prometheus at {}: {e}", self.base))?;
        let mut req = self.http.get(url).timeout(TIMEOUT);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.map_err(|e| {
            format!(
                "Prometheus at {} is unreachable: {}",
                self.base,
                error_chain(&e)
            )
        })?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| format!("Prometheus at {}: {}", self.base, error_chain(&e)))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            format!(
                "Prometheus at {} answered {status} with something that is not its API's JSON: {}",
                self.base,
                text.chars().take(200).collect::<String>()
            )
        })?;
        if v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(format!(
                "Prometheus at {} refused ({status}): {}: {}",
                self.base,
                v["errorType"].as_str().unwrap_or("error"),
                v["error"].as_str().unwrap_or("no reason given")
            ))
        }
    }

    /// An instant query, now.
    pub(crate) async fn query(&self, q: &str) -> Result<Answer, String> {
        let data = self.get("/api/v1/query", &[("query", q)]).await?;
        answer(&data)
    }

    /// The admin URLs of a scrape job: the scheme, host and port of each active target
    /// whose last scrape succeeded; and the other active targets, with why.
    pub(crate) async fn job_targets(
        &self,
        job: &str,
    ) -> Result<(Vec<String>, Vec<(String, String)>), String> {
        let data = self.get("/api/v1/targets", &[("state", "active")]).await?;
        let mut up = Vec::new();
        let mut down = Vec::new();
        for t in data["activeTargets"].as_array().into_iter().flatten() {
            if t["labels"]["job"] != job && t["scrapePool"] != job {
                continue;
            }
            let Some(url) = t["scrapeUrl"].as_str().and_then(admin_of) else {
                continue;
            };
            if t["health"] == "up" {
                up.push(url);
            } else {
                let why = format!(
                    "{}{}",
                    t["health"].as_str().unwrap_or("unknown"),
                    t["lastError"]
                        .as_str()
                        .filter(|e| !e.is_empty())
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                down.push((url, why));
            }
        }
        up.sort();
        up.dedup();
        Ok((up, down))
    }
}

impl Prometheus {
    /// The admin URLs of a scrape job, refused when none is healthy, with a line that says
    /// how many were found and which were left out.
    pub(crate) async fn instances(&self, job: &str) -> Result<(Vec<String>, String), String> {
        let (found, down) = self.job_targets(job).await?;
        let down = if down.is_empty() {
            String::new()
        } else {
            let named: Vec<String> = down.iter().map(|(u, why)| format!("{u} ({why})")).collect();
            format!("; left out, not healthy: {}", named.join(", "))
        };
        if found.is_empty() {
            return Err(format!(
                "Prometheus at {} has no healthy target in job `{job}`{down}: no instance to act on",
                self.base
            ));
        }
        let said = format!(
            "{} instances from Prometheus job `{job}`{down}",
            found.len()
        );
        Ok((found, said))
    }
}

/// `http://10.0.0.5:9901/chaos/metrics` → `http://10.0.0.5:9901` (an IPv6 host keeps its
/// brackets).
fn admin_of(scrape_url: &str) -> Option<String> {
    let u = reqwest::Url::parse(scrape_url).ok()?;
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", u.scheme()))
}

/// The answer in a query's `data`.
fn answer(data: &Value) -> Result<Answer, String> {
    let sample = |v: &Value| -> Result<f64, String> {
        let s = v[1]
            .as_str()
            .ok_or_else(|| format!("a sample without a value: {v}"))?;
        // Prometheus writes NaN, +Inf and -Inf as such.
        s.parse::<f64>()
            .map_err(|_| format!("a sample value that is not a number: `{s}`"))
    };
    match data["resultType"].as_str() {
        Some("scalar") => Ok(Answer::One(String::new(), sample(&data["result"])?)),
        Some("vector") => {
            let series = data["result"].as_array().cloned().unwrap_or_default();
            match series.as_slice() {
                [] => Ok(Answer::Nothing),
                [one] => Ok(Answer::One(labels(&one["metric"]), sample(&one["value"])?)),
                many => many
                    .iter()
                    .map(|s| Ok((labels(&s["metric"]), sample(&s["value"])?)))
                    .collect::<Result<_, String>>()
                    .map(Answer::Several),
            }
        }
        Some(other) => Err(format!(
            "the query answered a {other}; an instant query must answer one value (a vector or a scalar)"
        )),
        None => Err("the answer has no resultType".into()),
    }
}

/// `{instance="a:1",job="x"}` from a series' labels.
fn labels(metric: &Value) -> String {
    let pairs: Vec<String> = metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_read_as_one_none_or_several() {
        let one = json!({"resultType": "vector",
            "result": [{"metric": {"cohort": "control"}, "value": [1.0, "0.25"]}]});
        assert_eq!(
            answer(&one).unwrap(),
            Answer::One("{cohort=\"control\"}".into(), 0.25)
        );
        let none = json!({"resultType": "vector", "result": []});
        assert_eq!(answer(&none).unwrap(), Answer::Nothing);
        let nan = json!({"resultType": "scalar", "result": [1.0, "NaN"]});
        assert!(matches!(answer(&nan).unwrap(), Answer::One(_, v) if v.is_nan()));
        let many = json!({"resultType": "vector", "result": [
            {"metric": {"instance": "a:1"}, "value": [1.0, "1"]},
            {"metric": {"instance": "b:2"}, "value": [1.0, "+Inf"]}]});
        assert_eq!(
            answer(&many).unwrap(),
            Answer::Several(vec![
                ("{instance=\"a:1\"}".into(), 1.0),
                ("{instance=\"b:2\"}".into(), f64::INFINITY)
            ])
        );
        let matrix = json!({"resultType": "matrix", "result": []});
        assert!(answer(&matrix).unwrap_err().contains("matrix"));
    }

    #[test]
    fn the_admin_url_is_the_scrape_urls_scheme_host_and_port() {
        assert_eq!(
            admin_of("http://127.0.0.1:9901/chaos/metrics").as_deref(),
            Some("http://127.0.0.1:9901")
        );
        assert_eq!(
            admin_of("https://checkout-0.internal/chaos/metrics").as_deref(),
            Some("https://checkout-0.internal:443")
        );
        assert_eq!(
            admin_of("http://[::1]:9901/chaos/metrics").as_deref(),
            Some("http://[::1]:9901")
        );
    }
}
