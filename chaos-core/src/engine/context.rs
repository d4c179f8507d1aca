//! Reading a request's chaos context, judged by the rules in force: from its headers
//! (`x-chaos`, `x-chaos-signature`, `x-test-traffic`), and with the `otel` feature from a
//! W3C `baggage` header or an OpenTelemetry context.

use http::HeaderMap;

use super::Chaos;
use super::compiled::Compiled;
use crate::context::ChaosContext;
#[cfg(feature = "otel")]
use crate::context::baggage;
#[cfg(feature = "otel")]
use crate::context::cache::{Key, Source};
use crate::context::headers;
use crate::context::inbound::Policy;

impl Chaos {
    /// Builds the chaos context of an inbound request from its headers (`x-chaos`,
    /// `x-chaos-signature`, `x-test-traffic`), with this engine's limits and trust.
    ///
    /// `None` when the request carries none of them, or nothing usable. Bad items are
    /// ignored, counted and logged (rate-limited); they never fail the request. Directives
    /// are trusted when the rules set `allow_directives` or the signature checks out.
    #[inline]
    pub fn context_from_headers(&self, headers: &HeaderMap) -> Option<ChaosContext> {
        let (x, tt) = headers::context_values(headers)?;
        self.context_slow(headers, x, tt)
    }

    #[cold]
    #[inline(never)]
    fn context_slow(
        &self,
        headers: &HeaderMap,
        x: Option<&http::HeaderValue>,
        tt: Option<&http::HeaderValue>,
    ) -> Option<ChaosContext> {
        self.with_rules(|compiled| self.policy(compiled).context(headers, x, tt))
    }

    /// The chaos context of an inbound request: its chaos headers
    /// ([`context_from_headers`](Self::context_from_headers)), else, with the `otel`
    /// feature and while the engine is armed (so a decision may use it), its `baggage`
    /// header, else the OpenTelemetry context in its `extensions`, else the one attached
    /// to this thread. What a server layer reads.
    ///
    /// An engine that can decide nothing skips the OpenTelemetry sources, so a service
    /// that keeps the layer with no rules pays nothing for baggage it does not use. Such a
    /// hop passes a baggage-only context on through its own OpenTelemetry propagation
    /// (which carries the `chaos` members with the rest), not as `x-chaos`.
    ///
    /// ```
    /// use chaos_core::Chaos;
    ///
    /// let chaos = Chaos::new();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-test-traffic", "1".parse().unwrap());
    /// let ctx = chaos.inbound_context(&headers, &http::Extensions::new()).unwrap();
    /// assert!(ctx.is_test_traffic());
    /// ```
    #[inline]
    pub fn inbound_context(
        &self,
        headers: &HeaderMap,
        #[cfg_attr(not(feature = "otel"), allow(unused_variables))] extensions: &http::Extensions,
    ) -> Option<ChaosContext> {
        let ctx = self.context_from_headers(headers);
        #[cfg(feature = "otel")]
        if ctx.is_none() && self.is_armed() {
            return self.context_from_otel_sources(headers, extensions);
        }
        ctx
    }

    /// What inbound chaos headers are judged by, under `compiled`.
    pub(crate) fn policy<'a>(&'a self, compiled: &'a Compiled) -> Policy<'a> {
        let s = &*self.shared;
        Policy {
            limits: &compiled.set.limits,
            allow_directives: compiled.set.allow_directives,
            keys: s.keys.as_ref(),
            counters: &s.stats.headers,
            warn: &s.warn_headers,
            cache: &compiled.contexts,
            #[cfg(feature = "otel")]
            metrics: &s.metrics,
        }
    }
}

#[cfg(feature = "otel")]
impl Chaos {
    /// The chaos context carried in a W3C `baggage` header (`chaos`, `chaos-signature`,
    /// `test-traffic` members; see [`otel`](crate::otel)), checked as headers are.
    ///
    /// ```
    /// use chaos_core::Chaos;
    ///
    /// let chaos = Chaos::new();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("baggage", "user=7,chaos=scenario%3Dgameday-7,test-traffic=1".parse().unwrap());
    /// let ctx = chaos.context_from_baggage(&headers).unwrap();
    /// assert!(ctx.has_scenario("gameday-7") && ctx.is_test_traffic());
    /// ```
    ///
    /// Baggage tagged the way many requests are (a scenario tag, the test-traffic mark) is
    /// found again by its members' bytes once seen, as `x-chaos` is: a scan of the header
    /// and a look-up, no allocation.
    pub fn context_from_baggage(&self, headers: &HeaderMap) -> Option<ChaosContext> {
        let raw = baggage::raw_members(headers)?;
        let key = Key {
            source: Source::Baggage,
            x_chaos: raw.chaos,
            test_traffic: raw.test_traffic,
        };
        let compiled = self.compiled();
        compiled.contexts.get_or_make(key, |key| {
            // Not seen before (or not kept): decoded and judged as the headers they stand for.
            let decoded = raw.to_headers();
            let (x, tt) = headers::context_values(&decoded)?;
            self.policy(&compiled).context_made(&decoded, x, tt, key)
        })
    }

    /// The chaos context in an OpenTelemetry context's baggage (the members of
    /// [`context_from_baggage`](Self::context_from_baggage)), checked as headers are.
    ///
    /// ```
    /// use chaos_core::Chaos;
    /// use opentelemetry::baggage::BaggageExt;
    /// use opentelemetry::{Context, KeyValue};
    ///
    /// let cx = Context::new().with_baggage([KeyValue::new("chaos", "scenario=gameday-7")]);
    /// let ctx = Chaos::new().context_from_otel(&cx).unwrap();
    /// assert!(ctx.has_scenario("gameday-7"));
    /// ```
    pub fn context_from_otel(&self, cx: &opentelemetry::Context) -> Option<ChaosContext> {
        self.context_from_headers(&baggage::ours_from_otel(cx)?)
    }

    /// A `baggage` header, else the OpenTelemetry context in `extensions`, else the
    /// current one.
    #[cold]
    fn context_from_otel_sources(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Option<ChaosContext> {
        if let Some(c) = self.context_from_baggage(headers) {
            return Some(c);
        }
        match extensions.get::<opentelemetry::Context>() {
            Some(cx) => self.context_from_otel(cx),
            None => self.context_from_current_otel(),
        }
    }

    /// [`context_from_otel`](Self::context_from_otel) for the current OpenTelemetry
    /// context (the one attached to this thread).
    #[inline]
    pub fn context_from_current_otel(&self) -> Option<ChaosContext> {
        opentelemetry::Context::map_current(|cx| self.context_from_otel(cx))
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use http::HeaderValue;
    use opentelemetry::Context;

    use super::*;
    use crate::context::baggage::{bag, write_baggage};
    use crate::context::cache::{Key, Source};
    use crate::context::headers::{X_CHAOS, X_TEST_TRAFFIC};
    use crate::otel::{BAGGAGE, strip_baggage};

    #[test]
    fn reads_our_members_only() {
        let chaos = Chaos::new();
        let mut h = HeaderMap::new();
        h.insert(
            BAGGAGE,
            HeaderValue::from_static("user=1, chaos=scenario%3Dgameday-7;p=1, test-traffic=1"),
        );
        let ctx = chaos.context_from_baggage(&h).unwrap();
        assert!(ctx.has_scenario("gameday-7"));
        assert!(ctx.is_test_traffic());
        strip_baggage(&mut h);
        assert_eq!(bag(&h), ["user=1"]);
    }

    fn baggage(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn baggage_tags_are_kept_by_their_bytes_as_they_travel() {
        let chaos = Chaos::new();
        let key = Key {
            source: Source::Baggage,
            x_chaos: Some(b"scenario%3Dg7"),
            test_traffic: Some(b"1"),
        };
        assert!(chaos.compiled().contexts.get(&key).is_none());
        let first = chaos
            .context_from_baggage(&baggage("user=1,chaos=scenario%3Dg7;p=1,test-traffic=1"))
            .unwrap();
        assert!(first.has_scenario("g7") && first.is_test_traffic());
        // Kept under the members' own bytes, whatever else the baggage holds...
        let kept = chaos.compiled().contexts.get(&key).expect("kept");
        assert!(kept.is_some_and(|c| c.has_scenario("g7") && c.is_test_traffic()));
        let again = chaos
            .context_from_baggage(&baggage("session=9, test-traffic=1 ,chaos= scenario%3Dg7"))
            .unwrap();
        assert!(again.has_scenario("g7") && again.is_test_traffic());
        // ... and not as headers: the same bytes in `x-chaos` say something else.
        let as_headers = Key {
            source: Source::Headers,
            ..key
        };
        assert!(chaos.compiled().contexts.get(&as_headers).is_none());
        let mut h = HeaderMap::new();
        h.insert(X_CHAOS, HeaderValue::from_static("scenario%3Dg7"));
        h.insert(X_TEST_TRAFFIC, HeaderValue::from_static("1"));
        assert!(
            chaos
                .context_from_headers(&h)
                .is_none_or(|c| !c.has_scenario("g7"))
        );

        // Directives are judged every time (their trust is a signature's): never kept.
        let directive = Key {
            source: Source::Baggage,
            x_chaos: Some(b"abort%3D503"),
            test_traffic: None,
        };
        for _ in 0..2 {
            let ctx = chaos
                .context_from_baggage(&baggage("chaos=abort%3D503"))
                .unwrap();
            assert!(!ctx.is_trusted() && ctx.active_directives().next().is_none());
        }
        assert!(chaos.compiled().contexts.get(&directive).is_none());
        assert_eq!(
            chaos.snapshot().stats.directives_refused,
            2,
            "refused each time"
        );
    }

    #[test]
    fn nothing_of_ours_is_none() {
        let mut h = HeaderMap::new();
        h.insert(
            BAGGAGE,
            HeaderValue::from_static("user=1,tenant=a,chaosmonkey=3"),
        );
        assert!(Chaos::new().context_from_baggage(&h).is_none());
        assert!(Chaos::new().context_from_otel(&Context::new()).is_none());
    }

    #[test]
    fn writes_merged_replacing_ours_keeping_the_rest() {
        let mut h = HeaderMap::new();
        h.append(
            BAGGAGE,
            HeaderValue::from_static("user=7;prop=a, chaos=old"),
        );
        h.append(BAGGAGE, HeaderValue::from_static("tenant=acme"));
        let x = HeaderValue::from_static("scenario=gameday-7, delay=300ms;point=client");
        write_baggage(&mut h, Some(&x), None, true);
        assert_eq!(
            bag(&h),
            [
                "user=7;prop=a,tenant=acme,chaos=scenario=gameday-7%2C%20delay=300ms%3Bpoint=client,test-traffic=1"
            ]
        );
        // And it reads back to the same context.
        let ctx = Chaos::builder()
            .rules(
                crate::rules::RuleSet::parse(crate::rules::Format::Yaml, "allow_directives: true")
                    .unwrap(),
            )
            .build()
            .unwrap()
            .context_from_baggage(&h)
            .unwrap();
        assert!(ctx.has_scenario("gameday-7"));
        assert_eq!(ctx.directives().len(), 1);
    }
}
