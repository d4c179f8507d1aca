//! Building an engine.

use super::Chaos;
use crate::context::signature::SigningKeys;
use crate::rules::{RuleSet, RulesError};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;

/// Builds a [`Chaos`] engine.
///
/// ```
/// use chaos_core::Chaos;
/// use chaos_core::context::signature::SigningKeys;
/// use chaos_core::rules::{Format, RuleSet};
///
/// let chaos = Chaos::builder()
///     .rules(RuleSet::parse(Format::Yaml, "rules: []")?)
///     .signing_keys(SigningKeys::new("a long random secret"))
///     .seed(7)
///     .build()?;
/// assert!(!chaos.is_killed());
/// # Ok::<(), chaos_core::rules::RulesError>(())
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct Builder {
    rules: Option<RuleSet>,
    keys: Option<SigningKeys>,
    seed: Option<u64>,
    kill: bool,
    forced_off: bool,
    #[cfg(feature = "otel")]
    meter: Option<opentelemetry::metrics::Meter>,
}

impl Builder {
    /// Starts with these rules (validated again at build).
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Accepts signed directives made with these keys.
    pub fn signing_keys(mut self, keys: SigningKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Makes every random draw deterministic: the same seed and the same order of decisions
    /// give the same decisions (for tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts with the kill switch on (it can be resumed).
    pub fn kill_switch(mut self, on: bool) -> Self {
        self.kill = on;
        self
    }

    /// Keeps the kill switch on for good: nothing is ever injected (`CHAOS_DISABLED=1`).
    pub fn disabled(mut self, off: bool) -> Self {
        self.forced_off = off;
        self
    }

    /// Records the engine's metrics ([`otel`](crate::otel)) on this meter, instead of one
    /// from the global meter provider.
    ///
    /// ```
    /// use chaos_core::Chaos;
    ///
    /// let meter = opentelemetry::global::meter("checkout");
    /// let chaos = Chaos::builder().meter(meter).build()?;
    /// # Ok::<(), chaos_core::rules::RulesError>(())
    /// ```
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// The rules given do not validate.
    pub fn build(self) -> Result<Chaos, RulesError> {
        let chaos = Chaos {
            shared: Arc::new(Shared::new(
                self.keys,
                self.seed,
                self.kill,
                self.forced_off,
                #[cfg(feature = "otel")]
                crate::otel::Metrics::new(self.meter),
            )),
        };
        match self.rules {
            Some(r) => {
                chaos.replace(r)?;
            }
            None => chaos.refresh_flags(&chaos.compiled()),
        }
        chaos.shared.built.store(true, Ordering::Relaxed);
        Ok(chaos)
    }
}
