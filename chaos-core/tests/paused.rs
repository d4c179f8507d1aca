//! What a rule's expiry follows in a test: tokio's clock, so `tokio::time::advance` can
//! expire a rule with a ttl of its own at once; but a rule a test holds with
//! `Chaos::install` and no ttl of its own lives as long as its guard, however far a paused
//! clock leaps (auto-advance moved one 8,400 s in one call while a test waited on a
//! database). An expiry is never silent: the first request a rule matches after it
//! expired logs it.

mod support;

use std::time::Duration;

use chaos_core::Chaos;
use chaos_core::rules::{ErrorKind, Fault, Format, Rule, RuleSet};
use chaos_core::testing::Scenario;

fn rule(id: &str, scenario: &Scenario) -> Rule {
    Rule::new(id, "cache.get", Fault::Error(ErrorKind::Unavailable)).with_match(scenario.matcher())
}

async fn call(chaos: &Chaos, scenario: &Scenario) -> Result<u32, chaos_core::InjectedFault> {
    scenario
        .context()
        .scope(chaos.inject("cache.get", "users", async { 1 }))
        .await
}

#[tokio::test(start_paused = true)]
async fn a_held_rule_outlives_a_leap_of_the_paused_clock() {
    let chaos = Chaos::new();
    let scenario = Scenario::fresh();
    let _rule = chaos.install(rule("cache-down", &scenario)).unwrap();
    assert!(call(&chaos, &scenario).await.is_err());

    // What auto-advance did while a test waited on I/O: far past the default ttl (1h).
    tokio::time::advance(Duration::from_secs(8_400)).await;
    assert!(
        call(&chaos, &scenario).await.is_err(),
        "the held rule still injects"
    );
    assert_eq!(chaos.journal_for(scenario.name()).len(), 2);
    let snap = chaos.snapshot();
    assert_eq!(snap.rules[0].state, chaos_core::RuleStatus::Active);
    assert_eq!(
        snap.rules[0].expires_in, None,
        "it lives as long as its guard"
    );
    let json = serde_json::to_value(&snap).unwrap();
    assert!(json["rules"][0]["expires_in"].is_null(), "{json}");
}

#[tokio::test(start_paused = true)]
async fn a_held_rule_with_a_ttl_of_its_own_expires_as_asked() {
    let chaos = Chaos::new();
    let scenario = Scenario::fresh();
    let _rule = chaos
        .install(rule("cache-down", &scenario).with_ttl(Duration::from_secs(10)))
        .unwrap();
    assert!(call(&chaos, &scenario).await.is_err());
    let left = chaos.snapshot().rules[0].expires_in.unwrap().0;
    assert_eq!(left, Duration::from_secs(10));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(call(&chaos, &scenario).await.unwrap(), 1);
    assert_eq!(
        chaos.snapshot().rules[0].state,
        chaos_core::RuleStatus::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn time_left_reads_in_whole_seconds() {
    let chaos = Chaos::new();
    chaos
        .replace(
            RuleSet::parse(
                Format::Yaml,
                "rules:\n  - { id: a, point: server, fault: { abort: 503 }, ttl: 30m }\n",
            )
            .unwrap(),
        )
        .unwrap();
    tokio::time::advance(Duration::from_millis(1_234)).await;
    let json = serde_json::to_value(chaos.snapshot()).unwrap();
    assert_eq!(json["rules"][0]["expires_in"], "29m 58s", "{json}");
    tokio::time::advance(Duration::from_millis(1_798_300)).await;
    let json = serde_json::to_value(chaos.snapshot()).unwrap();
    assert_eq!(json["rules"][0]["expires_in"], "466ms", "{json}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_expired_rule_says_so_at_the_first_request_it_matches() {
    let logs = support::Logs::capture();
    let chaos = Chaos::new();
    let scenario = Scenario::fresh();
    // Loaded as a file or the admin API loads it: it takes defaults.ttl (1h).
    chaos.add_rule(rule("cache-down", &scenario)).unwrap();
    assert!(call(&chaos, &scenario).await.is_err());
    tokio::time::advance(Duration::from_secs(3_601)).await;
    for _ in 0..3 {
        assert_eq!(call(&chaos, &scenario).await.unwrap(), 1);
    }
    let said = logs.lines_with("rule expired");
    assert_eq!(said.len(), 1, "{}", logs.text());
    assert!(said[0].contains("rule=\"cache-down\""), "{}", said[0]);
    assert_eq!(chaos.snapshot().rules[0].counters.expired, 3);
}
