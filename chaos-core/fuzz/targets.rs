//! The fuzz targets: what each untrusted input goes through, and what must hold of the
//! result besides not panicking. Shared by the corpus test (`tests/fuzz_corpus.rs`, run
//! in CI) and the long runner (`examples/fuzz.rs`, `scripts/fuzz`).

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use chaos_core::context::signature::{SignatureError, SigningKeys};
use chaos_core::context::{XChaos, parse_test_traffic};
use chaos_core::rules::{Format, Limits, RuleSet};

/// An input kind, named as its corpus directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `x-chaos` and `x-test-traffic` values.
    Header,
    /// `x-chaos-signature` over an `x-chaos` value: `VALUE \n SIGNATURE`.
    Signature,
    /// A rules document in YAML.
    RulesYaml,
    /// A rules document in JSON.
    RulesJson,
    /// A rules document in TOML.
    RulesToml,
    /// W3C `baggage` lines (one per input line), read for our members and stripped at a
    /// trust boundary (feature `otel`).
    #[cfg(feature = "otel")]
    Baggage,
}

impl Target {
    pub(crate) const ALL: &[Target] = &[
        Target::Header,
        Target::Signature,
        Target::RulesYaml,
        Target::RulesJson,
        Target::RulesToml,
        #[cfg(feature = "otel")]
        Target::Baggage,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Header => "header",
            Target::Signature => "signature",
            Target::RulesYaml => "rules-yaml",
            Target::RulesJson => "rules-json",
            Target::RulesToml => "rules-toml",
            #[cfg(feature = "otel")]
            Target::Baggage => "baggage",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Target> {
        Target::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Runs one input; panics (with what broke) if a property fails.
    pub(crate) fn run(self, input: &[u8]) {
        match self {
            Target::Header => header(input),
            Target::Signature => signature(input),
            Target::RulesYaml => rules(Format::Yaml, input),
            Target::RulesJson => rules(Format::Json, input),
            Target::RulesToml => rules(Format::Toml, input),
            #[cfg(feature = "otel")]
            Target::Baggage => baggage(input),
        }
    }
}

/// The key every signature input is checked against.
pub(crate) fn keys() -> SigningKeys {
    SigningKeys::new("fuzzing key, long enough to be accepted").with_previous("the old key")
}

/// A fixed "now", so a corpus entry means the same on every run.
pub(crate) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn header(input: &[u8]) {
    let limits = Limits::default();
    let _ = parse_test_traffic(input);
    let (parsed, errors) = XChaos::parse_lossy(input, &limits);
    // What was kept prints as a header that parses back to the same thing.
    let text = parsed.to_string();
    let (again, errors2) = XChaos::parse_lossy(text.as_bytes(), &limits);
    assert!(
        errors2.is_empty(),
        "{text:?} (kept from {:?}, errors {errors:?}) does not parse back: {errors2:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(again, parsed, "{text:?} does not round-trip");
    for e in &errors {
        assert!(!e.code().is_empty() && !e.reason().is_empty());
    }
}

fn signature(input: &[u8]) {
    let (value, sig) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &b""[..]),
    };
    let keys = keys();
    match keys.verify(value, sig, now()) {
        // Only a signature made with one of the keys verifies: the seeds hold some.
        Ok(v) => {
            let text = std::str::from_utf8(value).expect("a verified value is text");
            let sig = std::str::from_utf8(sig).expect("a verified signature is text");
            // Parts as the checker reads them: `name=value`, spaces around either ignored.
            let parts: Vec<(&str, &str)> = sig
                .split(',')
                .filter_map(|p| p.trim().split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let t: u64 = parts
                .iter()
                .rev()
                .find(|(k, _)| *k == "t")
                .and_then(|(_, v)| v.parse().ok())
                .expect("a verified signature has an expiry");
            let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
            let remade = if v.key_index == 0 {
                keys.sign(text, expires)
            } else {
                SigningKeys::new("the old key").sign(text, expires)
            };
            let mac = hex::decode(remade.split_once(",v1=").expect("v1").1).expect("hex");
            assert!(
                parts
                    .iter()
                    .any(|(k, v)| *k == "v1" && hex::decode(v).is_ok_and(|m| m == mac)),
                "verified {sig:?} for {text:?}, but the key signs {remade:?}"
            );
        }
        Err(SignatureError::Expired | SignatureError::TooLong | SignatureError::BadMac) => {}
        Err(SignatureError::Malformed(why)) => assert!(!why.is_empty()),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn rules(format: Format, input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match RuleSet::parse(format, text) {
        Ok(set) => {
            // A document that loads writes out and loads back as the same rules.
            let out = set
                .to_string(format)
                .unwrap_or_else(|e| panic!("loaded, but cannot be written: {e}"));
            let back = RuleSet::parse(format, &out)
                .unwrap_or_else(|e| panic!("written as {out:?}, which does not load: {e}"));
            assert_eq!(back, set, "{out:?} does not round-trip");
        }
        Err(e) => {
            assert!(!e.reason().is_empty(), "an error without a reason");
            if let Some(line) = e.line() {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "error at line {line} of a {}-line document: {e}",
                    text.lines().count()
                );
            }
        }
    }
}

/// What a context says, to compare two readings.
#[cfg(feature = "otel")]
fn said(ctx: Option<&chaos_core::ChaosContext>) -> Option<(Vec<String>, bool, bool, usize)> {
    ctx.map(|c| {
        (
            c.scenarios().to_vec(),
            c.is_test_traffic(),
            c.is_trusted(),
            c.directives().len(),
        )
    })
}

#[cfg(feature = "otel")]
fn baggage(input: &[u8]) {
    use chaos_core::Chaos;
    use http::{HeaderMap, HeaderValue};

    let mut h = HeaderMap::new();
    for line in input.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append("baggage", v);
        }
    }
    // A fresh engine, so its context cache starts empty: the second reading is a cache hit
    // whenever the first was kept, and must say the same.
    let chaos = Chaos::new();
    let first = chaos.context_from_baggage(&h);
    let again = chaos.context_from_baggage(&h);
    assert_eq!(
        said(first.as_ref()),
        said(again.as_ref()),
        "read twice, {h:?} says different things"
    );
    assert!(
        first.as_ref().is_none_or(|c| !c.is_trusted()),
        "unsigned baggage is trusted: {h:?}"
    );
    // At a trust boundary our members are stripped: nothing of ours is read after that.
    chaos_core::otel::strip_baggage(&mut h);
    assert!(
        chaos.context_from_baggage(&h).is_none(),
        "stripped, {h:?} still carries a context"
    );
}
