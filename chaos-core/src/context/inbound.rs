//! The trust policy for inbound chaos headers: what a request may say about itself.
//!
//! A scenario tag and the test-traffic mark are always read (they only select rules an
//! operator wrote). Directives take effect only when the rules allow them, or when the
//! request carries a valid signature over the exact `x-chaos` value. Bad items are
//! ignored, counted and logged (rate-limited), never fatal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};

use super::cache::{ContextCache, Key, Source};
use super::headers;
use super::signature::SigningKeys;
use super::{ChaosContext, Trust, XChaos, parse_test_traffic};
use crate::rate_limit::RateLimited;
use crate::rules::Limits;

/// What inbound headers cost the engine: items ignored, signatures refused, directives
/// refused as untrusted.
#[derive(Debug, Default)]
pub(crate) struct HeaderCounters {
    pub(crate) header_rejected: AtomicU64,
    pub(crate) signature_rejected: AtomicU64,
    pub(crate) directives_refused: AtomicU64,
    /// The same refusals by their stable code ([`REJECT_CODES`], then any other).
    by_code: [AtomicU64; REJECT_CODES.len() + 1],
}

/// The stable codes a refused part of a request's chaos headers is counted under: those of
/// [`HeaderError::code`](super::HeaderError::code), `bad_signature` and
/// `directives_refused`.
pub(crate) const REJECT_CODES: [&str; 11] = [
    "syntax",
    "unknown_key",
    "bad_value",
    "bad_param",
    "above_ceiling",
    "too_long",
    "too_many_items",
    "not_ascii",
    "bad_test_traffic",
    "bad_signature",
    "directives_refused",
];

impl HeaderCounters {
    /// The refusals by code, every code of [`REJECT_CODES`] (0 when never seen), and
    /// `other` for a code not in it when there was one.
    pub(crate) fn by_code(&self) -> Vec<(&'static str, u64)> {
        REJECT_CODES
            .iter()
            .copied()
            .chain(["other"])
            .zip(&self.by_code)
            .map(|(c, n)| (c, n.load(Ordering::Relaxed)))
            .filter(|(c, n)| *n > 0 || *c != "other")
            .collect()
    }
}

/// What the policy is judged against: the engine's limits, settings and keys.
pub(crate) struct Policy<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) allow_directives: bool,
    pub(crate) keys: Option<&'a SigningKeys>,
    pub(crate) counters: &'a HeaderCounters,
    pub(crate) warn: &'a RateLimited,
    /// Contexts made before from the same bytes, for the rules in force.
    pub(crate) cache: &'a ContextCache,
    /// Where refusals are also counted (feature `otel`: the engine's metrics).
    #[cfg(feature = "otel")]
    pub(crate) metrics: &'a dyn CountRefusals,
}

/// What else counts a refused part of a chaos header, by its code.
#[cfg(feature = "otel")]
pub(crate) trait CountRefusals {
    /// A part of a chaos header ignored, for `code`.
    fn header_rejected(&self, code: &'static str);
}

impl Policy<'_> {
    /// The context of a request that carries `x-chaos` (`x`) or `x-test-traffic` (`tt`).
    #[cold]
    pub(crate) fn context(
        &self,
        headers: &HeaderMap,
        x: Option<&HeaderValue>,
        tt: Option<&HeaderValue>,
    ) -> Option<ChaosContext> {
        let key = Key {
            source: Source::Headers,
            x_chaos: x.map(HeaderValue::as_bytes),
            test_traffic: tt.map(HeaderValue::as_bytes),
        };
        self.cache
            .get_or_make(key, |key| self.context_made(headers, x, tt, key))
    }

    /// The context of these headers, parsed and judged (not found in the cache): kept
    /// under `key`, if given, when it is made of tags and the mark only.
    pub(crate) fn context_made(
        &self,
        headers: &HeaderMap,
        x: Option<&HeaderValue>,
        tt: Option<&HeaderValue>,
        key: Option<Key<'_>>,
    ) -> Option<ChaosContext> {
        let mut clean = key.is_some();
        let test_traffic = match tt.map(|v| parse_test_traffic(v.as_bytes())) {
            None => false,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                clean = false;
                self.refuse(&self.counters.header_rejected, e.code(), &e);
                false
            }
        };
        let mut header = XChaos::default();
        let mut trust = Trust::Untrusted;
        let mut hop = 0;
        if let Some(x) = x {
            let (parsed, errors) = XChaos::parse_lossy(x.as_bytes(), self.limits);
            // Counted once per refused item, each under its own reason.
            for e in &errors {
                self.refuse(&self.counters.header_rejected, e.code(), e);
            }
            header = parsed;
            clean &= errors.is_empty() && header.directives.is_empty();
            if !header.directives.is_empty() {
                if self.allow_directives {
                    trust = Trust::Allowed;
                } else if let (Some(keys), Some(sig)) =
                    (self.keys, headers.get(&headers::X_CHAOS_SIGNATURE))
                {
                    match keys.verify(x.as_bytes(), sig.as_bytes(), SystemTime::now()) {
                        Ok(v) if errors.is_empty() => {
                            hop = v.hop;
                            trust = Trust::Signed {
                                value: x.clone(),
                                signature: SigningKeys::strip_hop(sig.to_str().unwrap_or_default()),
                            };
                        }
                        Ok(_) => self.refuse(
                            &self.counters.directives_refused,
                            "directives_refused",
                            &"the signed header has refused items",
                        ),
                        Err(e) => self.refuse(
                            &self.counters.signature_rejected,
                            "bad_signature",
                            &format_args!("x-chaos-signature: {e}"),
                        ),
                    }
                } else {
                    self.refuse(
                        &self.counters.directives_refused,
                        "directives_refused",
                        &"directives are not allowed and the request is not signed",
                    );
                }
            }
        }
        if clean {
            // Tags and the mark only: the same bytes always make this context.
            let ctx = (!header.is_empty() || test_traffic)
                .then(|| ChaosContext::shared(header, test_traffic));
            if let Some(key) = &key {
                self.cache.put(key, ctx.clone());
            }
            return ctx;
        }
        if header.is_empty() && !test_traffic {
            return None;
        }
        Some(ChaosContext::new(header, test_traffic, trust, hop))
    }

    /// Something a request said, refused: counted in `counter` and (feature `otel`) under
    /// `code` in `chaos.header_rejected`, and logged, rate-limited.
    fn refuse(&self, counter: &AtomicU64, code: &'static str, what: &dyn std::fmt::Display) {
        counter.fetch_add(1, Ordering::Relaxed);
        let i = REJECT_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(REJECT_CODES.len());
        self.counters.by_code[i].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "otel")]
        self.metrics.header_rejected(code);
        if let Some(held) = self.warn.allow() {
            tracing::warn!(target: "chaos", reason = %what, code, suppressed = held, "ignored part of a chaos header");
        }
    }
}
