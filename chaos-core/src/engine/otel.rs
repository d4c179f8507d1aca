//! Reading the chaos context from OpenTelemetry (feature `otel`): a `baggage` header, or
//! an OpenTelemetry context's baggage, checked as headers are.

use http::HeaderMap;
use opentelemetry::Context;

use super::Chaos;
use crate::context::ChaosContext;
use crate::otel;

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
    pub fn context_from_baggage(&self, headers: &HeaderMap) -> Option<ChaosContext> {
        self.context_from_headers(&otel::ours_from_headers(headers)?)
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
    pub fn context_from_otel(&self, cx: &Context) -> Option<ChaosContext> {
        self.context_from_headers(&otel::ours_from_otel(cx)?)
    }

    /// [`context_from_otel`](Self::context_from_otel) for the current OpenTelemetry
    /// context (the one attached to this thread).
    #[inline]
    pub fn context_from_current_otel(&self) -> Option<ChaosContext> {
        Context::map_current(|cx| self.context_from_otel(cx))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::otel::{BAGGAGE, bag, strip_baggage, write_baggage};

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
