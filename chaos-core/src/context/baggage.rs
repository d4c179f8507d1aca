//! Our members of W3C `baggage`: found, written (merged), stripped.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

use super::headers::{X_CHAOS, X_CHAOS_SIGNATURE, X_TEST_TRAFFIC};

/// The `baggage` header.
pub const BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");

/// W3C baggage limits: what every platform must propagate.
const MAX_MEMBERS: usize = 64;
const MAX_BYTES: usize = 8192;

/// Our members' keys.
const CHAOS: &str = "chaos";
const SIGNATURE: &str = "chaos-signature";
const TEST_TRAFFIC: &str = "test-traffic";

/// What a baggage value may not hold as is (W3C `baggage-octet` excludes controls, space,
/// `"`, `,`, `;`, `\`; `%` is the escape itself).
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(0x7f);

/// Our members.
#[derive(Clone, Copy)]
enum Member {
    Chaos,
    Signature,
    TestTraffic,
}

/// Which of our members a list member (`key=value;props`, white space around the key)
/// is, with what follows its `=`; `None` for someone else's.
fn our_member(member: &[u8]) -> Option<(Member, &[u8])> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let key = match member[..eq].trim_ascii() {
        b"chaos" => Member::Chaos,
        b"chaos-signature" => Member::Signature,
        b"test-traffic" => Member::TestTraffic,
        _ => return None,
    };
    Some((key, &member[eq + 1..]))
}

/// Our members of a request's `baggage` as they travel (each value still percent-encoded,
/// without its properties; of a key given twice, the last), borrowed from the headers:
/// what the engine's context cache knows a baggage-tagged request by, so such a request
/// costs a scan and a look-up, not a decode and a parse.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawMembers<'a> {
    pub(crate) chaos: Option<&'a [u8]>,
    pub(crate) signature: Option<&'a [u8]>,
    pub(crate) test_traffic: Option<&'a [u8]>,
}

/// Our members of a request's `baggage` (`None` when there are none), allocating nothing.
/// A line that is no text (a byte outside visible ASCII and tab) is skipped whole, as
/// [`strip_baggage`] keeps it whole.
pub(crate) fn raw_members(headers: &HeaderMap) -> Option<RawMembers<'_>> {
    let mut found = RawMembers::default();
    for v in headers.get_all(&BAGGAGE) {
        let v = v.as_bytes();
        if names_ours(v) {
            line_members(v, &mut found);
        }
    }
    (found != RawMembers::default()).then_some(found)
}

/// Our members of one `baggage` line, over those found before: one pass over its bytes,
/// which also checks that they are text.
fn line_members<'a>(v: &'a [u8], found: &mut RawMembers<'a>) {
    let mut line = RawMembers::default();
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        if b == b',' {
            member(&v[start..i], &mut line);
            start = i + 1;
        } else if b != b'\t' && !(b' '..0x7f).contains(&b) {
            return;
        }
    }
    member(&v[start..], &mut line);
    for (to, from) in [
        (&mut found.chaos, line.chaos),
        (&mut found.signature, line.signature),
        (&mut found.test_traffic, line.test_traffic),
    ] {
        if from.is_some() {
            *to = from;
        }
    }
}

/// One list member (`key=value;properties`, white space around each part), into `found`
/// if it is one of ours. Kept out of the line's loop, whose every byte it would slow.
#[inline(never)]
fn member<'a>(m: &'a [u8], found: &mut RawMembers<'a>) {
    let m = m.trim_ascii_start();
    // Most members are someone else's: their first bytes tell.
    if !(m.starts_with(CHAOS.as_bytes()) || m.starts_with(TEST_TRAFFIC.as_bytes())) {
        return;
    }
    let Some((key, value)) = our_member(m) else {
        return;
    };
    let slot = match key {
        Member::Chaos => &mut found.chaos,
        Member::Signature => &mut found.signature,
        Member::TestTraffic => &mut found.test_traffic,
    };
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    *slot = Some(value[..end].trim_ascii());
}

impl RawMembers<'_> {
    /// The chaos headers these members stand for, percent-decoded (a member whose decoded
    /// value is no header value is left out), for the engine to check as it checks headers.
    pub(crate) fn to_headers(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (key, value) in [
            (CHAOS, self.chaos),
            (SIGNATURE, self.signature),
            (TEST_TRAFFIC, self.test_traffic),
        ] {
            if let Some(v) = value {
                put(&mut headers, key, &percent_decode(v).decode_utf8_lossy());
            }
        }
        headers
    }
}

/// Our members of an OpenTelemetry context's baggage, as the chaos headers they stand for.
pub(crate) fn ours_from_otel(cx: &Context) -> Option<HeaderMap> {
    let bag = cx.baggage();
    if bag.is_empty() {
        return None;
    }
    let mut found: Option<HeaderMap> = None;
    for key in [CHAOS, SIGNATURE, TEST_TRAFFIC] {
        if let Some(v) = bag.get(key) {
            put(found.get_or_insert_with(HeaderMap::new), key, v.as_str());
        }
    }
    found
}

/// Whether a `baggage` value may hold one of our members: a member whose key starts
/// `chaos` or `test-traffic`. One pass over the bytes, so a request whose baggage is
/// someone else's pays a few instructions per byte (`str::contains` would set up a
/// substring search, hundreds of instructions, per call): the members' starts only.
#[inline]
fn names_ours(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        while i < v.len() && matches!(v[i], b' ' | b'\t') {
            i += 1;
        }
        let member = &v[i..];
        if member.starts_with(CHAOS.as_bytes()) || member.starts_with(TEST_TRAFFIC.as_bytes()) {
            return true;
        }
        match member.iter().position(|&b| b == b',') {
            Some(p) => i += p + 1,
            None => return false,
        }
    }
    false
}

/// Puts our member `key` into `headers` as the header it stands for.
fn put(headers: &mut HeaderMap, key: &str, value: &str) {
    let Ok(value) = HeaderValue::from_str(value) else {
        return;
    };
    let name = match key {
        CHAOS => X_CHAOS,
        SIGNATURE => X_CHAOS_SIGNATURE,
        _ => X_TEST_TRAFFIC,
    };
    headers.insert(name, value);
}

/// Writes the next hop's context into `headers`' `baggage`, merged: other members are
/// kept as they are, ours replace earlier ones, and nothing is written if the result would
/// pass the W3C limits (64 members, 8192 bytes).
pub(crate) fn write_baggage(
    headers: &mut HeaderMap,
    x_chaos: Option<&HeaderValue>,
    signature: Option<&HeaderValue>,
    test_traffic: bool,
) {
    if let Some(ours) = our_members(x_chaos, signature, test_traffic) {
        write_members(headers, &ours);
    }
}

/// Our members for the next hop, joined (`chaos=…,chaos-signature=…,test-traffic=1`):
/// `None` when there is nothing to carry, or it would pass the W3C limits alone.
pub(crate) fn our_members(
    x_chaos: Option<&HeaderValue>,
    signature: Option<&HeaderValue>,
    test_traffic: bool,
) -> Option<HeaderValue> {
    let mut ours = String::new();
    let mut add = |key: &str, v: &dyn std::fmt::Display| {
        if !ours.is_empty() {
            ours.push(',');
        }
        // Writing into a `String` cannot fail.
        let _ = write!(ours, "{key}={v}");
    };
    if let Some(v) = x_chaos.and_then(|v| v.to_str().ok()) {
        add(CHAOS, &utf8_percent_encode(v, VALUE));
        if let Some(s) = signature.and_then(|s| s.to_str().ok()) {
            add(SIGNATURE, &utf8_percent_encode(s, VALUE));
        }
    }
    if test_traffic {
        add(TEST_TRAFFIC, &1);
    }
    if ours.is_empty() || ours.len() > MAX_BYTES {
        return None;
    }
    HeaderValue::try_from(ours).ok()
}

/// Writes `ours` (from [`our_members`]) into `headers`' `baggage`, merged as
/// [`write_baggage`] says. A request without baggage of its own gets `ours` as it is: a
/// reference count, no copy.
pub(crate) fn write_members(headers: &mut HeaderMap, ours: &HeaderValue) {
    if !headers.contains_key(&BAGGAGE) {
        headers.insert(BAGGAGE, ours.clone());
        return;
    }
    let Ok(ours) = ours.to_str() else { return };
    let mut members: Vec<&str> = Vec::new();
    for v in headers.get_all(&BAGGAGE) {
        let Ok(s) = v.to_str() else {
            // Not text: leave the header alone rather than lose what is in it.
            return;
        };
        members.extend(
            s.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty() && our_member(m.as_bytes()).is_none()),
        );
    }
    if members.len() + ours.split(',').count() > MAX_MEMBERS {
        return;
    }
    let mut joined = members.join(",");
    if !joined.is_empty() {
        joined.push(',');
    }
    joined.push_str(ours);
    if joined.len() > MAX_BYTES {
        return;
    }
    let Ok(value) = HeaderValue::try_from(joined) else {
        return;
    };
    headers.remove(&BAGGAGE);
    headers.insert(BAGGAGE, value);
}

/// Removes our members from `baggage`, keeping the others (at a trust boundary, with the
/// chaos headers).
pub fn strip_baggage(headers: &mut HeaderMap) {
    if !headers.contains_key(&BAGGAGE) {
        return;
    }
    let mut kept: Vec<HeaderValue> = Vec::new();
    for v in headers.get_all(&BAGGAGE) {
        let Ok(s) = v.to_str() else {
            kept.push(v.clone());
            continue;
        };
        if names_ours(s.as_bytes()) {
            let rest: Vec<&str> = s
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty() && our_member(m.as_bytes()).is_none())
                .collect();
            if let Ok(v) = HeaderValue::try_from(rest.join(","))
                && !v.is_empty()
            {
                kept.push(v);
            }
        } else {
            kept.push(v.clone());
        }
    }
    headers.remove(&BAGGAGE);
    for v in kept {
        headers.append(&BAGGAGE, v);
    }
}

/// The `baggage` header lines, as text (for tests).
#[cfg(test)]
pub(crate) fn bag(h: &HeaderMap) -> Vec<&str> {
    h.get_all(&BAGGAGE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_check_finds_member_keys_only() {
        assert!(names_ours(b"chaos=x"));
        assert!(names_ours(b"user=1, \tchaos-signature=t"));
        assert!(names_ours(b"a=b,test-traffic=1"));
        assert!(!names_ours(b"user=chaos,tenant=test-traffic"));
        assert!(!names_ours(b""));
        assert!(!names_ours(b"user=1,tenant=acme"));
    }

    #[test]
    fn our_members_are_read_as_they_travel() {
        let lines = |vs: &[&'static [u8]]| {
            let mut h = HeaderMap::new();
            for v in vs {
                h.append(BAGGAGE, HeaderValue::from_bytes(v).unwrap());
            }
            h
        };
        let h = lines(&[b"user=1, chaos = scenario%3Da ;p=1,\ttest-traffic=1 "]);
        assert_eq!(
            raw_members(&h),
            Some(RawMembers {
                chaos: Some(b"scenario%3Da"),
                signature: None,
                test_traffic: Some(b"1"),
            })
        );
        assert_eq!(
            raw_members(&h).unwrap().to_headers().get(X_CHAOS).unwrap(),
            "scenario=a"
        );
        // Across lines, the last of a key; foreign keys that start like ours are not ours.
        let h = lines(&[
            b"chaos=scenario%3Da,chaosmonkey=3",
            b"tenant=acme,chaos=scenario%3Db;p,chaos-signature=t%3D1",
        ]);
        let m = raw_members(&h).unwrap();
        assert_eq!(
            (m.chaos, m.signature, m.test_traffic),
            (Some(&b"scenario%3Db"[..]), Some(&b"t%3D1"[..]), None)
        );
        // Nothing of ours, or only in a line that is no text: none.
        assert_eq!(raw_members(&lines(&[b"chaosmonkey=3,user=chaos"])), None);
        assert_eq!(raw_members(&lines(&[b"chaos=scenario%3Da,u=\xff"])), None);
        assert_eq!(raw_members(&HeaderMap::new()), None);
    }

    #[test]
    fn respects_the_w3c_limits() {
        let many: Vec<String> = (0..63).map(|i| format!("k{i}=v")).collect();
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::try_from(many.join(",")).unwrap());
        let before = bag(&h).join("");
        let x = HeaderValue::from_static("scenario=a");
        // 63 + chaos + test-traffic = 65 members: nothing is written, nothing dropped.
        write_baggage(&mut h, Some(&x), None, true);
        assert_eq!(bag(&h).join(""), before);
        // 63 + chaos = 64: fits.
        write_baggage(&mut h, Some(&x), None, false);
        assert!(bag(&h)[0].ends_with(",chaos=scenario=a"));

        let mut h = HeaderMap::new();
        let big = format!("blob={}", "x".repeat(8180));
        h.insert(BAGGAGE, HeaderValue::try_from(big.clone()).unwrap());
        write_baggage(&mut h, Some(&x), None, false);
        assert_eq!(bag(&h), [big.as_str()]);
    }
}
