//! The admin service: the token, the routes, and the answers.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use chaos_core::Chaos;
use chaos_core::rules::{Format, Rule, RuleSet, RulesError};
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_service::Service;

use crate::chaos_body::ChaosBody;
use chaos_core::BoxError;

use super::metrics;
use super::metrics::metrics_text;

/// The largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// The admin control service. See the [module docs](crate::admin).
///
/// `B` is the response body type; the default suits hyper and axum's
/// `Router::fallback_service` / `route_service`.
pub struct AdminService<B = UnsyncBoxBody<Bytes, BoxError>> {
    inner: Arc<Inner>,
    _body: PhantomData<fn() -> B>,
}

struct Inner {
    chaos: Chaos,
    token: Box<[u8]>,
}

impl<B> Clone for AdminService<B> {
    fn clone(&self) -> Self {
        AdminService {
            inner: self.inner.clone(),
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for AdminService<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminService")
            .field("chaos", &self.inner.chaos)
            .finish_non_exhaustive()
    }
}

impl AdminService {
    /// An admin service for `chaos`, protected by a bearer token.
    ///
    /// # Panics
    ///
    /// If the token is empty or shorter than 16 bytes: an admin API that anyone can guess
    /// would let an outside caller switch faults on.
    #[track_caller]
    pub fn new(chaos: &Chaos, token: impl Into<String>) -> Self {
        let token = token.into();
        assert!(
            token.len() >= 16,
            "the chaos admin token must be at least 16 bytes long"
        );
        AdminService {
            inner: Arc::new(Inner {
                chaos: chaos.clone(),
                token: token.into_bytes().into_boxed_slice(),
            }),
            _body: PhantomData,
        }
    }

    /// An admin service whose token is the environment variable `var`; `None` when it is
    /// unset or shorter than 16 bytes (the API is then not served at all).
    pub fn from_env(chaos: &Chaos, var: &str) -> Option<Self> {
        let token = std::env::var(var).ok().filter(|t| t.len() >= 16)?;
        Some(AdminService::new(chaos, token))
    }
}

impl<B> AdminService<B> {
    /// The same service answering with another body type, e.g. `axum::body::Body` to
    /// pass it to `axum::serve` on its own.
    pub fn with_body<B2: ChaosBody>(self) -> AdminService<B2> {
        AdminService {
            inner: self.inner,
            _body: PhantomData,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<ReqB, B> Service<Request<ReqB>> for AdminService<B>
where
    ReqB: http_body::Body + Send + 'static,
    ReqB::Data: Send,
    ReqB::Error: Into<BoxError>,
    B: ChaosBody + Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<B>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(handle(&inner, req).await) })
    }
}

fn reply<B: ChaosBody>(status: StatusCode, body: serde_json::Value) -> Response<B> {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut res = Response::new(B::from_bytes(Bytes::from(bytes)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn error<B: ChaosBody>(status: StatusCode, msg: impl fmt::Display) -> Response<B> {
    reply(status, json!({ "error": msg.to_string() }))
}

fn authorized<ReqB>(inner: &Inner, req: &Request<ReqB>) -> bool {
    let Some(given) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    bool::from(inner.token.as_ref().ct_eq(given))
}

/// The format of a request body, from its `content-type` (JSON unless YAML or TOML),
/// and the content type as it arrived (for an answer that says what it saw).
fn format_of<ReqB>(req: &Request<ReqB>) -> (Format, Option<String>) {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let lower = ct.as_deref().unwrap_or("").to_ascii_lowercase();
    let format = if lower.contains("yaml") {
        Format::Yaml
    } else if lower.contains("toml") {
        Format::Toml
    } else {
        Format::Json
    };
    (format, ct)
}

/// The answer to a body that was refused: when it is not a document of the format its
/// content type declared (it does not parse, or is not a map at all), what was expected,
/// the content type that arrived, and where it failed; else the refusal as it is.
fn body_refused<B: ChaosBody>(e: &RulesError, format: Format, ct: Option<&str>) -> Response<B> {
    let whole = e.rule_id().is_none() && e.field().is_none();
    let not_a_map = whole
        && e.is_invalid()
        && ["expected a map", "expected mapping"]
            .iter()
            .any(|m| e.reason().contains(m));
    if !(e.is_syntax() || not_a_map) {
        return refused(e);
    }
    let what = if e.is_syntax() {
        format!("body is not {format}")
    } else {
        format!("body is not a {format} map")
    };
    let ct = match ct {
        Some(ct) => format!("content-type: {ct}"),
        None => "no content-type, so JSON".to_owned(),
    };
    let mut msg = format!("{what} ({ct}): {}", e.reason());
    if let (Some(l), Some(c)) = (e.line(), e.column()) {
        msg.push_str(&format!(" at line {l} column {c}"));
    }
    msg.push_str(
        "; the body is read as YAML when the content-type names yaml \
         (`Content-Type: application/yaml`), as TOML when it names toml, else as JSON \
         (`Content-Type: application/json`)",
    );
    error(StatusCode::BAD_REQUEST, msg)
}

async fn read_body<ReqB, B>(body: ReqB) -> Result<String, Response<B>>
where
    ReqB: http_body::Body,
    ReqB::Error: Into<BoxError>,
    B: ChaosBody,
{
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ));
        }
    };
    String::from_utf8(bytes.to_vec())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the body is not UTF-8"))
}

/// Parses a body on tokio's blocking pool, so a large or hostile document never holds up
/// the worker thread that serves traffic (outside a tokio runtime: in place). `Err` is the
/// answer to give when the parse itself could not run.
async fn off_the_worker<T: Send + 'static, B: ChaosBody>(
    parse: impl FnOnce() -> Result<T, RulesError> + Send + 'static,
) -> Result<Result<T, RulesError>, Response<B>> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.spawn_blocking(parse).await.map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the body could not be parsed: {e}"),
            )
        }),
        Err(_) => Ok(parse()),
    }
}

fn refused<B: ChaosBody>(e: &RulesError) -> Response<B> {
    if e.is_not_found() {
        error(StatusCode::NOT_FOUND, e)
    } else {
        error(StatusCode::BAD_REQUEST, e)
    }
}

/// What a rule change is answered with besides its version: a sentence for each rule whose
/// point and target this process has never seen, so it cannot fire here. The change is
/// made all the same (an adapter may be built later, a host called later).
fn warnings(chaos: &Chaos, rules: &[Rule]) -> Vec<String> {
    chaos
        .target_warnings(rules)
        .iter()
        .map(|w| {
            tracing::warn!(target: "chaos", rule = %w.rule, "{w}");
            format!("{w}; the change is made")
        })
        .collect()
}

fn method_not_allowed<B: ChaosBody>(allow: &'static str) -> Response<B> {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this route takes {allow}"),
    );
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

async fn handle<ReqB, B>(inner: &Inner, req: Request<ReqB>) -> Response<B>
where
    ReqB: http_body::Body,
    ReqB::Error: Into<BoxError>,
    B: ChaosBody,
{
    if !authorized(inner, &req) {
        let mut res = error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer TOKEN` header is required",
        );
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let chaos = &inner.chaos;
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    match path.as_str() {
        "/chaos/rules" => match method {
            Method::GET => match serde_json::to_value(chaos.snapshot()) {
                Ok(v) => reply(StatusCode::OK, v),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            Method::PUT => {
                let (format, ct) = format_of(&req);
                let text = match read_body(req.into_body()).await {
                    Ok(t) => t,
                    Err(res) => return res,
                };
                let set = match off_the_worker(move || RuleSet::parse(format, &text)).await {
                    Ok(Ok(set)) => set,
                    Ok(Err(e)) => return body_refused(&e, format, ct.as_deref()),
                    Err(res) => return res,
                };
                let warnings = warnings(chaos, &set.rules);
                match chaos.replace(set) {
                    Ok(version) => {
                        tracing::info!(target: "chaos", version, "rules replaced through the admin API");
                        reply(
                            StatusCode::OK,
                            json!({ "version": version, "warnings": warnings }),
                        )
                    }
                    Err(e) => refused(&e),
                }
            }
            Method::POST => {
                let (format, ct) = format_of(&req);
                let text = match read_body(req.into_body()).await {
                    Ok(t) => t,
                    Err(res) => return res,
                };
                let rule = match off_the_worker(move || Rule::parse(format, &text)).await {
                    Ok(Ok(rule)) => rule,
                    Ok(Err(e)) => return body_refused(&e, format, ct.as_deref()),
                    Err(res) => return res,
                };
                let id = rule.id.clone();
                let warnings = warnings(chaos, std::slice::from_ref(&rule));
                match chaos.add_rule(rule) {
                    Ok(version) => {
                        tracing::info!(target: "chaos", rule = %id, version, "rule added through the admin API");
                        reply(
                            StatusCode::CREATED,
                            json!({ "version": version, "warnings": warnings }),
                        )
                    }
                    Err(e) => refused(&e),
                }
            }
            _ => method_not_allowed("GET, PUT, POST"),
        },
        "/chaos/document" => match method {
            Method::GET => match serde_json::to_value(chaos.rules()) {
                Ok(v) => reply(StatusCode::OK, v),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            _ => method_not_allowed("GET"),
        },
        "/chaos/metrics" => match method {
            Method::GET => {
                let mut res = Response::new(B::from_bytes(Bytes::from(metrics_text(chaos))));
                res.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                res
            }
            _ => method_not_allowed("GET"),
        },
        "/chaos/kill" | "/chaos/resume" if method != Method::POST => method_not_allowed("POST"),
        "/chaos/kill" => {
            chaos.kill();
            reply(StatusCode::OK, json!({ "killed": chaos.is_killed() }))
        }
        "/chaos/resume" => {
            chaos.resume();
            reply(StatusCode::OK, json!({ "killed": chaos.is_killed() }))
        }
        p => match p.strip_prefix("/chaos/rules/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                if method != Method::DELETE {
                    return method_not_allowed("DELETE");
                }
                match chaos.remove_rule(id) {
                    Ok(version) => {
                        tracing::info!(target: "chaos", rule = id, version, "rule removed through the admin API");
                        reply(StatusCode::OK, json!({ "version": version }))
                    }
                    Err(e) => refused(&e),
                }
            }
            _ => error(StatusCode::NOT_FOUND, format!("no route {method} {p}")),
        },
    }
}
