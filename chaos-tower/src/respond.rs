//! Synthesized answers: HTTP responses for aborts and errors, and gRPC trailers-only
//! responses (`grpc-status` / `grpc-message` as headers, HTTP 200).

use std::fmt::Write as _;

use bytes::Bytes;
use chaos_core::Injection;
use chaos_core::rules::{Abort, AbortKind, ErrorKind, Fault};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::body::{ChaosBody, FaultBody};

/// Whether a request is gRPC: `content-type: application/grpc` or `application/grpc+...`.
#[inline]
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC code an HTTP status maps to, as gRPC clients map them
/// (gRPC's "HTTP to gRPC status code mapping").
pub(crate) fn http_to_grpc(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// The HTTP status closest to a gRPC code, for a gRPC abort met by a plain HTTP request.
pub(crate) fn grpc_to_http(code: u8) -> StatusCode {
    match code {
        1 => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        3 | 9 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A gRPC trailers-only response: HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the headers, empty body.
pub(crate) fn grpc_status<B: Default>(code: u8, message: &str) -> Response<B> {
    let mut res = Response::new(B::default());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::try_from(percent_encode(message)) {
        h.insert("grpc-message", v);
    }
    res
}

/// gRPC's `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The answer to an `abort` fault.
pub(crate) fn abort<B: ChaosBody>(abort: &Abort, rule: &str, grpc: bool) -> Response<B> {
    let default_message = || format!("injected by chaos rule `{rule}`");
    if grpc {
        let code = match abort.kind {
            AbortKind::Grpc(c) => c,
            AbortKind::Http(s) => http_to_grpc(s),
            // New kinds: the most common retryable failure.
            _ => 14,
        };
        let msg = abort.body.clone().unwrap_or_else(default_message);
        let mut res = grpc_status::<B>(code, &msg);
        extra_headers(res.headers_mut(), &abort.headers);
        return res;
    }
    let status = match abort.kind {
        AbortKind::Http(s) => s,
        AbortKind::Grpc(c) => grpc_to_http(c),
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut res = match &abort.body {
        Some(b) => {
            let mut res = Response::new(B::from_bytes(Bytes::from(b.clone())));
            let ct = abort
                .content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("text/plain; charset=utf-8"));
            res.headers_mut().insert(CONTENT_TYPE, ct);
            res
        }
        None => Response::new(B::default()),
    };
    *res.status_mut() = status;
    extra_headers(res.headers_mut(), &abort.headers);
    res
}

fn extra_headers(h: &mut HeaderMap, extra: &[(HeaderName, HeaderValue)]) {
    for (k, v) in extra {
        h.append(k.clone(), v.clone());
    }
}

/// The answer to an `error: KIND` fault at an HTTP point: `unavailable` is 503 (gRPC 14),
/// `timeout` 504 (gRPC 4), a SQLSTATE 500 (gRPC 13).
pub(crate) fn error<B: ChaosBody>(kind: ErrorKind, rule: &str, grpc: bool) -> Response<B> {
    let (status, code) = match kind {
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 14),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, 4),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 13),
    };
    if grpc {
        return grpc_status(code, &format!("{kind} (injected by chaos rule `{rule}`)"));
    }
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    res
}

/// The answer to a dropped request: an empty response whose body errors on its first
/// poll, so nothing is sent. The body holds the injection (its concurrency slot).
pub(crate) fn dropped<B: ChaosBody>(inj: Injection, header: Option<&HeaderName>) -> Response<B> {
    let mut res = Response::new(B::default());
    mark(&mut res, header, inj.rule_id());
    res.map(|b| B::from_fault(FaultBody::reset(b, inj)))
}

/// Marks an injected response and applies a body fault; the body then holds the
/// injection until it ends.
pub(crate) fn finish<B: ChaosBody>(
    mut res: Response<B>,
    injection: Option<Injection>,
    header: Option<&HeaderName>,
) -> Response<B> {
    let Some(inj) = injection else { return res };
    mark(&mut res, header, inj.rule_id());
    if let Fault::Body(_) = inj.fault() {
        return res.map(|body| B::from_fault(FaultBody::new(body, inj)));
    }
    res
}

/// Adds the attribution header (`x-chaos-injected: RULE_ID`).
pub(crate) fn mark<B>(res: &mut Response<B>, header: Option<&HeaderName>, rule: &str) {
    if let Some(name) = header
        && let Ok(v) = HeaderValue::from_str(rule)
    {
        res.headers_mut().insert(name.clone(), v);
    }
}

/// Whether a response counts as an error for steady-state observation: HTTP 5xx, or a
/// gRPC trailers-only response whose status is a server-side failure.
#[inline]
pub(crate) fn is_error<B>(res: &Response<B>) -> bool {
    if res.status().is_server_error() {
        return true;
    }
    match res.headers().get("grpc-status") {
        None => false,
        // UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS
        Some(v) => matches!(v.as_bytes(), b"2" | b"4" | b"8" | b"13" | b"14" | b"15"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
        let res: Response<String> = grpc_status(14, "down é");
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], "down %C3%A9");
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn status_mappings_follow_grpc() {
        assert_eq!(http_to_grpc(StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(http_to_grpc(StatusCode::UNAUTHORIZED), 16);
        assert_eq!(http_to_grpc(StatusCode::IM_A_TEAPOT), 2);
        assert_eq!(grpc_to_http(4), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(grpc_to_http(14), StatusCode::SERVICE_UNAVAILABLE);
    }
}
