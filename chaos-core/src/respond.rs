//! Synthesized answers for HTTP adapters (feature `http-body`): the response an `abort`
//! or an `error: KIND` fault stands for, as plain HTTP or as a gRPC trailers-only
//! response (`grpc-status` / `grpc-message` as headers, HTTP 200).
//!
//! The bodies are [`Bytes`]; each adapter turns them into its own body type.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::rules::{Abort, AbortKind, ErrorKind};

/// Whether a request is gRPC: `content-type: application/grpc` or `application/grpc+...`.
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC code an HTTP status maps to, as gRPC clients map them
/// (gRPC's "HTTP to gRPC status code mapping").
pub fn http_to_grpc(status: StatusCode) -> u8 {
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
pub fn grpc_to_http(code: u8) -> StatusCode {
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
pub fn grpc_status(code: u8, message: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
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

/// Adds the attribution header (`x-chaos-injected: RULE_ID`, or the adapter's own name
/// for it; `None` leaves the headers alone).
pub fn mark(headers: &mut HeaderMap, header: Option<&HeaderName>, rule: &str) {
    if let Some(name) = header
        && let Ok(v) = HeaderValue::from_str(rule)
    {
        headers.insert(name.clone(), v);
    }
}

/// The answer to an `abort` fault.
pub fn abort(abort: &Abort, rule: &str, grpc: bool) -> Response<Bytes> {
    let default_message = || format!("injected by chaos rule `{rule}`");
    if grpc {
        let code = match abort.kind {
            AbortKind::Grpc(c) => c,
            AbortKind::Http(s) => http_to_grpc(s),
        };
        let msg = abort.body.clone().unwrap_or_else(default_message);
        let mut res = grpc_status(code, &msg);
        extra_headers(res.headers_mut(), &abort.headers);
        return res;
    }
    let status = match abort.kind {
        AbortKind::Http(s) => s,
        AbortKind::Grpc(c) => grpc_to_http(c),
    };
    let mut res = match &abort.body {
        Some(b) => {
            let mut res = Response::new(Bytes::from(b.clone()));
            let ct = abort
                .content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("text/plain; charset=utf-8"));
            res.headers_mut().insert(CONTENT_TYPE, ct);
            res
        }
        None => Response::new(Bytes::new()),
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
pub fn error(kind: ErrorKind, rule: &str, grpc: bool) -> Response<Bytes> {
    let (status, code) = match kind {
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 14),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, 4),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 13),
    };
    if grpc {
        return grpc_status(code, &format!("{kind} (injected by chaos rule `{rule}`)"));
    }
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

/// Whether a response is a failure for the steady state: an HTTP 5xx, or a gRPC status
/// that is a server-side failure (`UNKNOWN`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`,
/// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`) in the headers (a trailers-only answer).
#[inline]
pub fn is_failure(status: StatusCode, headers: &HeaderMap) -> bool {
    if status.is_server_error() {
        return true;
    }
    // A header name made once: a `&str` key would be parsed on every call.
    static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    match headers.get(&GRPC_STATUS) {
        None => false,
        Some(v) => matches!(v.as_bytes(), b"2" | b"4" | b"8" | b"13" | b"14" | b"15"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
        let res = grpc_status(14, "down é");
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
