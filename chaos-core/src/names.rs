//! The one check for every name of the contract: rule ids, points, targets, scenarios.

/// What a name may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// A rule id: 1 to 128 of lowercase letters, digits, `-`, `_`, `.`.
    RuleId,
    /// A point in a rules file: as a rule id.
    Point,
    /// A scenario tag: 1 to 64 of letters, digits, `.`, `_`, `-`.
    Scenario,
    /// A directive's `point=` or `target=` (the param's name): as a scenario tag.
    Param(&'static str),
}

/// A name byte allowed in every name (`MIXED`), or in lowercase names (`LOWER`).
const MIXED: u8 = 1;
const LOWER: u8 = 2;

/// What each byte may be in: one look-up per byte, since the check runs on every
/// `x-chaos` scenario a request carries.
static ALLOWED: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() || c == b'.' || c == b'_' || c == b'-' || c.is_ascii_lowercase() {
            t[b] = MIXED | LOWER;
        } else if c.is_ascii_uppercase() {
            t[b] = MIXED;
        }
        b += 1;
    }
    t
};

impl Name {
    /// Checks `s`; the error says what it broke, in the words the contract uses.
    #[inline]
    pub(crate) fn check(self, s: &str) -> Result<(), String> {
        let (max, lower) = match self {
            Name::RuleId | Name::Point => (128, true),
            Name::Scenario | Name::Param(_) => (64, false),
        };
        let ok_len = !s.is_empty() && s.len() <= max;
        let class = if lower { LOWER } else { MIXED };
        let ok_chars = s.bytes().all(|b| ALLOWED[usize::from(b)] & class != 0);
        if ok_len && ok_chars {
            return Ok(());
        }
        Err(self.error(s, ok_len, max))
    }

    #[cold]
    fn error(self, s: &str, ok_len: bool, max: usize) -> String {
        match self {
            Name::Point => {
                format!("point `{s}` must be `server`, `client`, `sql` or a lowercase name")
            }
            Name::RuleId if !ok_len => format!("rule id `{s}` must be 1 to {max} characters"),
            Name::RuleId => {
                format!("rule id `{s}` may only hold lowercase letters, digits, `-`, `_` and `.`")
            }
            Name::Scenario if !ok_len => format!("scenario `{s}` must be 1 to {max} characters"),
            Name::Scenario => {
                format!("scenario `{s}` may only hold letters, digits, `.`, `_` and `-`")
            }
            Name::Param(p) => {
                format!("`{p}` `{s}` may only hold letters, digits, `.`, `_` and `-`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Name;

    #[test]
    fn each_kind_of_name() {
        assert!(Name::RuleId.check("payments-slow.v2_1").is_ok());
        assert_eq!(
            Name::RuleId.check("Payments").unwrap_err(),
            "rule id `Payments` may only hold lowercase letters, digits, `-`, `_` and `.`"
        );
        assert!(Name::Scenario.check("GameDay-7").is_ok());
        assert_eq!(
            Name::Scenario.check("").unwrap_err(),
            "scenario `` must be 1 to 64 characters"
        );
        assert!(Name::Scenario.check(&"a".repeat(65)).is_err());
        assert!(Name::RuleId.check(&"a".repeat(128)).is_ok());
        assert_eq!(
            Name::Param("target").check("a/b").unwrap_err(),
            "`target` `a/b` may only hold letters, digits, `.`, `_` and `-`"
        );
        assert!(Name::Point.check("Server!").is_err());
        assert!(Name::Point.check("queue.publish").is_ok());
    }
}
