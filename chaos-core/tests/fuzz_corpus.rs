//! The fuzz targets (`fuzz/targets.rs`) in the test suite: every corpus input and every
//! input that once failed is replayed, and property tests run a short fuzz of each
//! target plus the signature's properties. The long run is `scripts/fuzz`.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;
use std::time::Duration;

use chaos_core::context::signature::{SignatureError, SigningKeys};
use chaos_core::rules::{Format, RuleSet};
use proptest::prelude::*;
use targets::Target;

fn inputs(t: Target, sub: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(sub)
        .join(t.name());
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let p = e.path();
                    (p.display().to_string(), std::fs::read(&p).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut n = 0;
    for &t in Target::ALL {
        for sub in ["corpus", "regressions"] {
            for (name, bytes) in inputs(t, sub) {
                let r = std::panic::catch_unwind(|| t.run(&bytes));
                assert!(r.is_ok(), "{name} fails {}", t.name());
                n += 1;
            }
        }
    }
    assert!(n >= 11, "the corpus is there ({n} inputs)");
}

#[test]
fn the_rules_seeds_load_so_the_round_trip_is_exercised() {
    for (t, format) in [
        (Target::RulesYaml, Format::Yaml),
        (Target::RulesJson, Format::Json),
        (Target::RulesToml, Format::Toml),
    ] {
        for (name, bytes) in inputs(t, "corpus") {
            let text = String::from_utf8(bytes).unwrap();
            RuleSet::parse(format, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// Seeds of a target, for the short fuzz.
fn seeds(t: Target) -> Vec<Vec<u8>> {
    let mut s: Vec<Vec<u8>> = inputs(t, "corpus").into_iter().map(|(_, b)| b).collect();
    s.extend(inputs(t, "regressions").into_iter().map(|(_, b)| b));
    if t == Target::Signature {
        let exp = targets::now() + Duration::from_secs(600);
        s.push(format!("scenario=a\n{}", targets::keys().sign("scenario=a", exp)).into_bytes());
    }
    s
}

/// A seed with a few byte edits: (which seed, [(position, kind, byte)]).
fn edited(t: Target) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(t);
    let n = seeds.len();
    (
        0..n,
        proptest::collection::vec((any::<u16>(), 0u8..4, any::<u8>()), 1..6),
    )
        .prop_map(move |(i, edits)| {
            let mut v = seeds[i].clone();
            for (pos, kind, b) in edits {
                let at = if v.is_empty() {
                    0
                } else {
                    pos as usize % v.len()
                };
                match kind {
                    0 if !v.is_empty() => v[at] = b,
                    1 => v.insert(at, b),
                    2 if !v.is_empty() => {
                        v.remove(at);
                    }
                    _ => v.insert(at, [b',', b';', b'=', b':', b'\n', b'"'][b as usize % 6]),
                }
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn short_fuzz_header(v in edited(Target::Header)) { Target::Header.run(&v); }

    #[test]
    fn short_fuzz_signature(v in edited(Target::Signature)) { Target::Signature.run(&v); }

    #[test]
    fn short_fuzz_rules_yaml(v in edited(Target::RulesYaml)) { Target::RulesYaml.run(&v); }

    #[test]
    fn short_fuzz_rules_json(v in edited(Target::RulesJson)) { Target::RulesJson.run(&v); }

    #[test]
    fn short_fuzz_rules_toml(v in edited(Target::RulesToml)) { Target::RulesToml.run(&v); }

    #[cfg(feature = "otel")]
    #[test]
    fn short_fuzz_baggage(v in edited(Target::Baggage)) { Target::Baggage.run(&v); }

    #[test]
    fn random_bytes_never_panic(t in 0usize..Target::ALL.len(), v in proptest::collection::vec(any::<u8>(), 0..200)) {
        Target::ALL[t].run(&v);
    }

    #[test]
    fn a_signature_verifies_for_its_value_only(
        value in "[ -~]{1,80}",
        other in "[ -~]{1,80}",
        ttl in 1u64..86_000,
        hop in proptest::option::of(0u32..100),
    ) {
        let keys = targets::keys();
        let now = targets::now();
        let mut sig = keys.sign(&value, now + Duration::from_secs(ttl));
        if let Some(h) = hop {
            sig.push_str(&format!(",h={h}"));
        }
        let v = keys.verify(value.as_bytes(), sig.as_bytes(), now).unwrap();
        prop_assert_eq!(v.key_index, 0);
        prop_assert_eq!(v.hop, hop.unwrap_or(0));
        if other != value {
            prop_assert_eq!(
                keys.verify(other.as_bytes(), sig.as_bytes(), now).unwrap_err(),
                SignatureError::BadMac
            );
        }
        // Expired once its time has passed; refused by another key.
        prop_assert_eq!(
            keys.verify(value.as_bytes(), sig.as_bytes(), now + Duration::from_secs(ttl + 1)).unwrap_err(),
            SignatureError::Expired
        );
        prop_assert!(SigningKeys::new("another key entirely").verify(value.as_bytes(), sig.as_bytes(), now).is_err());
    }

    #[test]
    fn a_flipped_bit_in_the_mac_is_refused(value in "[ -~]{1,40}", bit in 0usize..256) {
        let keys = targets::keys();
        let now = targets::now();
        let sig = keys.sign(&value, now + Duration::from_secs(60));
        let (head, mac) = sig.split_once(",v1=").unwrap();
        let mut bytes = hex::decode(mac).unwrap();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let forged = format!("{head},v1={}", hex::encode(bytes));
        prop_assert!(keys.verify(value.as_bytes(), forged.as_bytes(), now).is_err());
    }
}
