use std::fmt;

/// Why a rules file, string or value was refused.
///
/// It names where the problem is as precisely as the format allows: the source (a file
/// path, or `<string>`), the line and column, the rule id and the field, then the reason.
///
/// ```text
/// rules.yaml:12:11: rule `payments-slow`, field `rate`: rate 125% is above 100%
/// ```
///
/// The `Display` text is for people; use the accessors in code.
pub struct RulesError {
    inner: Box<Inner>,
}

struct Inner {
    source_name: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    rule: Option<String>,
    field: Option<String>,
    reason: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Io,
    Syntax,
    Invalid,
    NotFound,
}

impl RulesError {
    fn new(kind: Kind, reason: impl Into<String>) -> RulesError {
        RulesError {
            inner: Box::new(Inner {
                source_name: None,
                line: None,
                column: None,
                rule: None,
                field: None,
                reason: reason.into(),
                kind,
            }),
        }
    }

    pub(crate) fn io(reason: impl Into<String>) -> RulesError {
        Self::new(Kind::Io, reason)
    }

    pub(crate) fn syntax(reason: impl Into<String>) -> RulesError {
        Self::new(Kind::Syntax, reason)
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> RulesError {
        Self::new(Kind::Invalid, reason)
    }

    pub(crate) fn not_found(rule: &str) -> RulesError {
        Self::new(Kind::NotFound, format!("no rule with id `{rule}`")).with_rule(rule)
    }

    pub(crate) fn with_source(mut self, name: impl Into<String>) -> RulesError {
        self.inner.source_name = Some(name.into());
        self
    }

    pub(crate) fn with_position(mut self, line: usize, column: usize) -> RulesError {
        self.inner.line = Some(line);
        self.inner.column = Some(column);
        self
    }

    pub(crate) fn with_rule(mut self, id: impl Into<String>) -> RulesError {
        self.inner.rule = Some(id.into());
        self
    }

    pub(crate) fn with_field(mut self, field: impl Into<String>) -> RulesError {
        let f = field.into();
        if !f.is_empty() && f != "." {
            self.inner.field = Some(f);
        }
        self
    }

    /// The file path, or `<string>`, the rules came from, when known.
    pub fn source_name(&self) -> Option<&str> {
        self.inner.source_name.as_deref()
    }

    /// The 1-based line, when the format reports one.
    pub fn line(&self) -> Option<usize> {
        self.inner.line
    }

    /// The 1-based column, when the format reports one.
    pub fn column(&self) -> Option<usize> {
        self.inner.column
    }

    /// The id of the rule at fault, when the problem is inside one rule.
    pub fn rule_id(&self) -> Option<&str> {
        self.inner.rule.as_deref()
    }

    /// The field at fault, relative to the rule (`fault.delay`) or to the top level.
    pub fn field(&self) -> Option<&str> {
        self.inner.field.as_deref()
    }

    /// Why the input was refused, without the position.
    pub fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// The input could not be read (missing file, permissions).
    pub fn is_io(&self) -> bool {
        self.inner.kind == Kind::Io
    }

    /// The input is not well-formed JSON, TOML or YAML.
    pub fn is_syntax(&self) -> bool {
        self.inner.kind == Kind::Syntax
    }

    /// The input is well-formed but breaks the schema or a rule of validation.
    pub fn is_invalid(&self) -> bool {
        self.inner.kind == Kind::Invalid
    }

    /// A rule id named by an operation (remove, abort) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.inner.kind == Kind::NotFound
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut prefix = false;
        if let Some(s) = &i.source_name {
            f.write_str(s)?;
            prefix = true;
        }
        if let (Some(l), Some(c)) = (i.line, i.column) {
            if prefix {
                write!(f, ":{l}:{c}")?;
            } else {
                write!(f, "line {l}, column {c}")?;
            }
            prefix = true;
        }
        if prefix {
            f.write_str(": ")?;
        }
        match (&i.rule, &i.field) {
            (Some(r), Some(fl)) => write!(f, "rule `{r}`, field `{fl}`: ")?,
            (Some(r), None) => write!(f, "rule `{r}`: ")?,
            (None, Some(fl)) => write!(f, "field `{fl}`: ")?,
            (None, None) => {}
        }
        f.write_str(&i.reason)
    }
}

impl fmt::Debug for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RulesError")
            .field("kind", &self.inner.kind)
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for RulesError {}
