//! The one client of the chaos admin API (chaos-tower, feature `admin`) that `run` and the
//! fleet commands share: its routes, the bearer token, and what an instance answered.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The admin API's routes.
pub(crate) mod route {
    /// `GET` the snapshot, `PUT` a document, `POST` one rule.
    pub(crate) const RULES: &str = "/chaos/rules";
    /// `GET` the rules document in force.
    pub(crate) const DOCUMENT: &str = "/chaos/document";
    /// `POST`: the kill switch on.
    pub(crate) const KILL: &str = "/chaos/kill";
    /// `POST`: the kill switch off.
    pub(crate) const RESUME: &str = "/chaos/resume";

    /// `DELETE` one rule.
    pub(crate) fn rule(id: &str) -> String {
        format!("{RULES}/{id}")
    }
}

/// What one instance answered.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A 2xx, with its JSON.
    Ok(Value),
    /// Any other status, with the reason it gave.
    Refused(StatusCode, String),
    /// No answer: a connection error, or the deadline.
    Unreachable(String),
}

impl Reply {
    pub(crate) fn is_ok(&self) -> bool {
        matches!(self, Reply::Ok(_))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Reply::Ok(v) => v.to_string(),
            Reply::Refused(s, why) => format!("refused ({s}): {why}"),
            Reply::Unreachable(why) => format!("unreachable: {why}"),
        }
    }

    /// The JSON of a 2xx; otherwise `{url}: ` and what went wrong.
    pub(crate) fn into_result(self, url: &str) -> Result<Value, String> {
        match self {
            Reply::Ok(v) => Ok(v),
            other => Err(format!("{url}: {}", other.describe())),
        }
    }

    /// The `warnings` of a rule change: rules that cannot fire on that instance.
    pub(crate) fn warnings(&self) -> Vec<String> {
        match self {
            Reply::Ok(v) => v["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The admin API of any number of instances, with one token.
#[derive(Clone, Debug)]
pub(crate) struct AdminClient {
    http: reqwest::Client,
    token: String,
}

impl AdminClient {
    pub(crate) fn new(token: String) -> Result<AdminClient, String> {
        Ok(AdminClient {
            http: http_client()?,
            token,
        })
    }

    /// The HTTP client, for the calls that are not the admin API's.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One request to one instance, answered within `timeout`.
    pub(crate) async fn call(
        &self,
        url: &str,
        method: Method,
        path: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{url}{path}"))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let timeout = timeout.max(Duration::from_millis(1));
        let answer = async {
            let res = req.send().await.map_err(|e| error_chain(&e))?;
            let status = res.status();
            let text = res.text().await.map_err(|e| error_chain(&e))?;
            Ok::<_, String>((status, text))
        };
        let (status, text) = match tokio::time::timeout(timeout, answer).await {
            Err(_) => return Reply::Unreachable("the deadline passed".into()),
            Ok(Err(e)) => return Reply::Unreachable(e),
            Ok(Ok(a)) => a,
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Reply::Ok(v)
        } else {
            let why = v["error"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_owned);
            Reply::Refused(status, why)
        }
    }
}

/// A client for loopback and internal hosts: no proxy from the environment.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// An error with its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Admin URLs as given: http(s), without a trailing `/`.
pub(crate) fn normalise(urls: &mut [String]) -> Result<(), String> {
    for u in urls {
        let parsed = reqwest::Url::parse(u).map_err(|e| format!("`{u}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{u}` is not an http(s) URL"));
        }
        *u = u.trim_end_matches('/').to_owned();
    }
    Ok(())
}
