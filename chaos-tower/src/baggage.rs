//! The chaos context in W3C `baggage` (feature `otel`): `chaos=<x-chaos value>` and
//! `test-traffic=1`, for hops that forward baggage but not our headers.

use chaos_core::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};
use chaos_core::{Chaos, ChaosContext};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use percent_encoding::percent_decode_str;

const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// The baggage member's key and value, when it is one of ours.
fn ours(member: &str) -> Option<(&str, &str)> {
    let kv = member.split(';').next()?.trim();
    let (k, v) = kv.split_once('=')?;
    let k = k.trim();
    (k == "chaos" || k == "test-traffic").then_some((k, v.trim()))
}

/// The context carried in `baggage`, if any (checked like the headers: a directive needs
/// `allow_directives` or a valid `x-chaos-signature` over the decoded value).
pub(crate) fn context(chaos: &Chaos, headers: &HeaderMap) -> Option<ChaosContext> {
    let mut found = HeaderMap::new();
    for v in headers.get_all(&BAGGAGE) {
        let Ok(s) = v.to_str() else { continue };
        if !s.contains("chaos=") && !s.contains("test-traffic=") {
            continue;
        }
        for (k, v) in s.split(',').filter_map(ours) {
            let decoded = percent_decode_str(v).decode_utf8_lossy();
            let Ok(value) = HeaderValue::from_str(&decoded) else {
                continue;
            };
            let name = if k == "chaos" {
                X_CHAOS
            } else {
                X_TEST_TRAFFIC
            };
            found.insert(name, value);
        }
    }
    if found.is_empty() {
        return None;
    }
    if let Some(sig) = headers.get(&X_CHAOS_SIGNATURE) {
        found.insert(X_CHAOS_SIGNATURE, sig.clone());
    }
    chaos.context_from_headers(&found)
}

/// Removes our members from `baggage` (at a trust boundary), keeping the others.
pub(crate) fn strip(headers: &mut HeaderMap) {
    if !headers.contains_key(&BAGGAGE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(&BAGGAGE)
        .iter()
        .filter_map(|v| {
            let s = v.to_str().ok()?;
            let rest: Vec<&str> = s.split(',').filter(|m| ours(m).is_none()).collect();
            let joined = rest.join(",");
            let joined = joined.trim();
            if joined.is_empty() {
                None
            } else {
                HeaderValue::from_str(joined).ok()
            }
        })
        .collect();
    headers.remove(&BAGGAGE);
    for v in kept {
        headers.append(&BAGGAGE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_members_only() {
        let chaos = Chaos::new();
        let mut h = HeaderMap::new();
        h.insert(
            BAGGAGE,
            HeaderValue::from_static("user=1, chaos=scenario%3Dgameday-7;p=1, test-traffic=1"),
        );
        let ctx = context(&chaos, &h).unwrap();
        assert!(ctx.has_scenario("gameday-7"));
        assert!(ctx.is_test_traffic());
        strip(&mut h);
        assert_eq!(h[&BAGGAGE], "user=1");
    }

    #[test]
    fn nothing_of_ours_is_none() {
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::from_static("user=1,tenant=a"));
        assert!(context(&Chaos::new(), &h).is_none());
    }
}
