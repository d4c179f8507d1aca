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

/// The values of `x-chaos` and `x-test-traffic` (each name's first), or `None` when `map`
/// has neither (the check every request makes). A small map is scanned once for the
/// names, and hashed into only for those it has.
#[inline]
pub(crate) fn context_values(
    map: &HeaderMap,
) -> Option<(Option<&HeaderValue>, Option<&HeaderValue>)> {
    let (x, tt) = if map.keys_len() <= SCAN {
        let mut keys = map.keys();
        let first_x = *keys.find(|k| **k == X_CHAOS || **k == X_TEST_TRAFFIC)? == X_CHAOS;
        // The rest of the names: is the other one there too?
        let other = if first_x { X_TEST_TRAFFIC } else { X_CHAOS };
        let both = keys.any(|k| *k == other);
        (
            (first_x || both).then(|| map.get(X_CHAOS)).flatten(),
            (!first_x || both)
                .then(|| map.get(X_TEST_TRAFFIC))
                .flatten(),
        )
    } else {
        (map.get(X_CHAOS), map.get(X_TEST_TRAFFIC))
    };
    (x.is_some() || tt.is_some()).then_some((x, tt))
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
            let (x, tt) = context_values(&m).unwrap();
            assert_eq!((x, tt), (m.get(X_CHAOS), m.get(X_TEST_TRAFFIC)), "{n}");
            assert_eq!(x.unwrap(), "scenario=a");
            let only = map(n, &[("x-test-traffic", "1")]);
            assert_eq!(
                context_values(&only),
                Some((None, only.get(X_TEST_TRAFFIC)))
            );
            assert_eq!(context_values(&map(n, &[("accept", "x")])), None);
        }
    }
}
