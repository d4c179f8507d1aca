//! What the schema alone cannot check: unique ids, ceilings, exclusive fields.

use std::collections::HashSet;

use std::time::Duration;

use super::{Fault, Guard, Limits, Rule, RuleSet, RulesError};
use crate::names::Name;

impl RuleSet {
    /// Checks what the schema alone cannot: unique ids, ceilings, exclusive fields.
    ///
    /// # Errors
    ///
    /// The first problem, naming the rule and field.
    pub fn validate(&self) -> Result<(), RulesError> {
        let mut ids = HashSet::new();
        if self.limits.max_items == 0 {
            return Err(RulesError::invalid("limits.max_items must be at least 1")
                .with_field("limits.max_items"));
        }
        if self.max_active == Some(0) {
            return Err(RulesError::invalid(
                "max_active 0 would never inject; remove the rules or set kill_switch",
            )
            .with_field("max_active"));
        }
        if let Some(g) = &self.guard {
            check_guard(g, false).map_err(|(field, reason)| {
                RulesError::invalid(reason).with_field(guard_field(field))
            })?;
        }
        for r in &self.rules {
            if !ids.insert(r.id.as_str()) {
                return Err(RulesError::invalid(format!("duplicate rule id `{}`", r.id))
                    .with_rule(&r.id)
                    .with_field("id"));
            }
            r.validate(&self.limits)?;
        }
        Ok(())
    }
}

impl Rule {
    /// Checks one rule against the limits.
    ///
    /// # Errors
    ///
    /// The first problem, naming the rule and field.
    pub fn validate(&self, limits: &Limits) -> Result<(), RulesError> {
        let err = |field: &str, reason: String| {
            Err(RulesError::invalid(reason)
                .with_rule(&self.id)
                .with_field(field))
        };
        Name::RuleId.check(&self.id).or_else(|e| err("id", e))?;
        limits
            .check_delay(&self.fault)
            .or_else(|e| err("fault.delay", e))?;
        let schedules = [
            self.sequence.is_some(),
            self.first.is_some(),
            self.every.is_some(),
        ];
        if schedules.iter().filter(|b| **b).count() > 1 {
            return err(
                "sequence",
                "give only one of `sequence`, `first`, `every`".to_owned(),
            );
        }
        if matches!(&self.sequence, Some(s) if s.is_empty()) {
            return err("sequence", "sequence is empty".to_owned());
        }
        if self.every == Some(0) {
            return err("every", "every 0 is not a period; use 1 or more".to_owned());
        }
        if self.ttl.is_some() && self.expires_at.is_some() {
            return err("ttl", "give `ttl` or `expires_at`, not both".to_owned());
        }
        if self.ttl.is_some_and(|t| t.0.is_zero()) {
            return err("ttl", "ttl 0s would expire at once".to_owned());
        }
        if self.max_active == Some(0) {
            return err("max_active", "max_active 0 would never inject".to_owned());
        }
        if let Some(g) = &self.guard {
            check_guard(g, true).or_else(|(field, reason)| err(&guard_field(field), reason))?;
        }
        if self.max_errors == Some(0) {
            return err("max_errors", "max_errors 0 would never inject".to_owned());
        }
        if self.max_errors.is_some_and(|n| n > u64::from(u32::MAX)) {
            return err("max_errors", format!("max_errors is at most {}", u32::MAX));
        }
        if let Some(r) = &self.ramp {
            if r.steps.is_empty() {
                return err("ramp.steps", "ramp has no steps".to_owned());
            }
            if r.every.0.is_zero() {
                return err("ramp.every", "ramp.every must be above 0s".to_owned());
            }
            if r.steps
                .windows(2)
                .any(|w| w[1].fraction() < w[0].fraction())
            {
                return err("ramp.steps", "ramp steps must not go down".to_owned());
            }
        }
        if self.matcher.sql.is_some() && self.point != "sql" {
            return err(
                "match.sql",
                format!(
                    "`match.sql` applies at the `sql` point, not `{}`",
                    self.point
                ),
            );
        }
        if let Fault::Body(_) = self.fault
            && self.point == "sql"
        {
            return err(
                "fault.body",
                "body faults apply to HTTP points, not `sql`".to_owned(),
            );
        }
        if let Some(s) = &self.matcher.scenario {
            Name::Scenario
                .check(s)
                .or_else(|e| err("match.scenario", e))?;
        }
        Ok(())
    }
}

/// `guard.FIELD`, or `guard` for the guard as a whole.
fn guard_field(field: &str) -> String {
    if field.is_empty() {
        "guard".to_owned()
    } else {
        format!("guard.{field}")
    }
}

/// The longest guard window.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// Checks a guard; `rule`: a rule's (which may compare with control), else the service's.
fn check_guard(g: &Guard, rule: bool) -> Result<(), (&'static str, String)> {
    let vs = g
        .vs_control
        .as_ref()
        .is_some_and(|v| v.error_rate_increase_above.is_some() || v.p99_ratio_above.is_some());
    if g.vs_control.is_some() && !rule {
        return Err((
            "vs_control",
            "the service guard has no control cohort to compare with; vs_control is for rules"
                .to_owned(),
        ));
    }
    if g.vs_control.is_some() && !vs {
        return Err((
            "vs_control",
            "vs_control needs `error_rate_increase_above` or `p99_ratio_above`".to_owned(),
        ));
    }
    if g.error_rate_above.is_none() && g.p99_above.is_none() && !vs {
        return Err((
            "",
            "a guard needs `error_rate_above`, `p99_above` or `vs_control`".to_owned(),
        ));
    }
    if let Some(r) = g.vs_control.as_ref().and_then(|v| v.p99_ratio_above)
        && !(r.is_finite() && r >= 1.0)
    {
        return Err((
            "vs_control.p99_ratio_above",
            format!("p99_ratio_above {r} must be a number of at least 1"),
        ));
    }
    if g.window.0 < Duration::from_secs(1) || g.window.0 > MAX_WINDOW {
        return Err((
            "window",
            format!("guard window {} must be from 1s to 1h", g.window),
        ));
    }
    if !rule && g.window.0 > Duration::from_secs(60) {
        return Err((
            "window",
            format!(
                "the service guard's window {} must be at most 60s",
                g.window
            ),
        ));
    }
    if g.min_requests == 0 {
        return Err((
            "min_requests",
            "min_requests 0 would judge an empty window; use 1 or more".to_owned(),
        ));
    }
    Ok(())
}
