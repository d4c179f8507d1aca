//! The header names of the contract.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `x-chaos`: scenario tags and directives.
pub const X_CHAOS: HeaderName = HeaderName::from_static("x-chaos");
/// `x-chaos-signature`: `t=EXPIRY,v1=HMAC` over `EXPIRY.X_CHAOS`.
pub const X_CHAOS_SIGNATURE: HeaderName = HeaderName::from_static("x-chaos-signature");
/// `x-test-traffic`: `1` marks synthetic traffic.
pub const X_TEST_TRAFFIC: HeaderName = HeaderName::from_static("x-test-traffic");
/// `x-chaos-injected`: set on injected responses, the rule id.
pub const X_CHAOS_INJECTED: HeaderName = HeaderName::from_static("x-chaos-injected");

/// Maps of at most this many names are scanned rather than hashed into: a request's own
/// headers usually number a dozen or two, and comparing names that differ in kind or
/// length costs a few instructions each, where hashing a custom name costs one per byte.
const SCAN: usize = 24;

/// Whether `map` carries `x-chaos` or `x-test-traffic`: the check every request makes.
#[inline]
pub(crate) fn carries_context(map: &HeaderMap) -> bool {
    if map.keys_len() <= SCAN {
        map.keys().any(|k| *k == X_CHAOS || *k == X_TEST_TRAFFIC)
    } else {
        map.contains_key(X_CHAOS) || map.contains_key(X_TEST_TRAFFIC)
    }
}

/// The values of `x-chaos` and `x-test-traffic` (each name's first), in one pass over a
/// small map.
#[inline]
pub(crate) fn context_values(map: &HeaderMap) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
    if map.keys_len() > SCAN {
        return (map.get(X_CHAOS), map.get(X_TEST_TRAFFIC));
    }
    let (mut x, mut tt) = (None, None);
    for (k, v) in map {
        if x.is_none() && *k == X_CHAOS {
            x = Some(v);
        } else if tt.is_none() && *k == X_TEST_TRAFFIC {
            tt = Some(v);
        }
    }
    (x, tt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: usize, extra: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for i in 0..n {
            m.insert(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        for (k, v) in extra {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn context_headers_found_in_small_and_large_maps() {
        for n in [0, 3, SCAN - 2, SCAN + 5] {
            assert!(!carries_context(&map(n, &[("accept", "x")])), "{n}");
            assert!(
                carries_context(&map(n, &[("x-chaos", "scenario=a")])),
                "{n}"
            );
            assert!(carries_context(&map(n, &[("x-test-traffic", "1")])), "{n}");
            let m = map(
                n,
                &[
                    ("x-chaos", "scenario=a"),
                    ("x-chaos", "scenario=b"),
                    ("x-test-traffic", "1"),
                ],
            );
            let (x, tt) = context_values(&m);
            assert_eq!((x, tt), (m.get(X_CHAOS), m.get(X_TEST_TRAFFIC)), "{n}");
            assert_eq!(x.unwrap(), "scenario=a");
            assert_eq!(context_values(&map(n, &[])), (None, None));
        }
    }
}
