//! Reading a rules document: JSON, TOML or YAML, with errors that say where.

use std::fmt;
use std::path::Path;

use super::value::MapOnly;
use super::{Rule, RuleSet, RulesError};

/// The largest rules document read, in bytes (a file, a string, an admin API body).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// What expanding YAML aliases may cost: a document of a few KiB must not grow into
/// hundreds of MiB ("billion laughs"). Rules files that share a `match` block through an
/// anchor stay far below these.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_recorded_anchor_bytes: 1 << 20,
            // Scalars replayed by aliases count here too: the expanded text is bounded.
            max_total_scalar_bytes: 2 * MAX_DOCUMENT_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 20_000,
            max_alias_expansions_per_anchor: 10_000,
        },
    }
}

/// Refuses what cannot be a rules document before any parsing: an empty text, or one of
/// only comments (most likely
/// a write caught half-way, or a body that went missing; clearing the rules is written
/// `rules: []`), or one above [`MAX_DOCUMENT_BYTES`].
fn check_size(text: &str) -> Result<(), RulesError> {
    // Blank lines, comments and YAML document markers only: nothing was said.
    let blank = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    });
    if blank {
        return Err(RulesError::invalid(
            "the document is empty; write `rules: []` to clear the rules",
        ));
    }
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(RulesError::invalid(format!(
            "the document is {} bytes, above the limit of {MAX_DOCUMENT_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// Reads at most [`MAX_DOCUMENT_BYTES`] and one byte of a file, so a larger one is seen
/// without reading it whole.
pub(crate) fn read_bounded_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of a rules file read with [`read_bounded_bytes`].
pub(crate) fn bounded_text(bytes: Vec<u8>) -> Result<String, RulesError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(RulesError::invalid(format!(
            "the file is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| RulesError::syntax("file is not UTF-8"))
}

/// A rules document format.
///
/// ```
/// use std::path::Path;
/// use chaos_core::rules::Format;
/// assert_eq!(Format::from_path(Path::new("rules.yml")), Some(Format::Yaml));
/// assert_eq!(Format::from_path(Path::new("rules.ini")), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON.
    Json,
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

impl Format {
    /// The format a file name implies: `.json`, `.toml`, `.yaml` / `.yml`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
        })
    }
}

// ---- loading ------------------------------------------------------------------------------

impl RuleSet {
    /// Parses and validates a document.
    ///
    /// # Errors
    ///
    /// The first problem found, with its position when the format gives one.
    pub fn parse(format: Format, text: &str) -> Result<RuleSet, RulesError> {
        Self::parse_named(format, text, None)
    }

    /// Reads, parses and validates a file; the format comes from the extension.
    ///
    /// # Errors
    ///
    /// The file cannot be read, has an unknown extension, or is refused; the error names
    /// the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let format = Format::from_path(path).ok_or_else(|| {
            RulesError::io("unknown rules format, expected a .json, .toml, .yaml or .yml file")
                .with_source(name.clone())
        })?;
        let text = read_bounded_bytes(path)
            .map_err(|e| RulesError::io(format!("cannot read: {e}")))
            .and_then(bounded_text)
            .map_err(|e| e.with_source(name.clone()))?;
        Self::parse_named(format, &text, Some(&name))
    }

    pub(crate) fn parse_named(
        format: Format,
        text: &str,
        name: Option<&str>,
    ) -> Result<RuleSet, RulesError> {
        let source = || name.unwrap_or("<string>");
        check_size(text).map_err(|e| e.with_source(source()))?;
        let set = match parse_doc::<RuleSet>(format, text) {
            Ok(set) => set,
            Err((err, path)) => {
                let err = locate_rule(format, text, err, &path);
                return Err(err.with_source(source()));
            }
        };
        set.validate().map_err(|e| e.with_source(source()))?;
        Ok(set)
    }

    /// Serializes the rules (normalised: durations as `300ms`, rates as `25%`).
    ///
    /// # Errors
    ///
    /// Only if the format cannot express the document (TOML cannot express every shape).
    pub fn to_string(&self, format: Format) -> Result<String, RulesError> {
        match format {
            Format::Json => {
                serde_json::to_string_pretty(self).map_err(|e| RulesError::invalid(e.to_string()))
            }
            Format::Toml => toml::to_string(self).map_err(|e| RulesError::invalid(e.to_string())),
            Format::Yaml => {
                serde_saphyr::to_string(self).map_err(|e| RulesError::invalid(e.to_string()))
            }
        }
    }
}

/// Parses any document of this project's kind (an experiment file, say) as a rules file
/// is parsed: the same size and YAML alias limits, only maps where maps belong, and errors
/// that give the source, line and column, and the field's path.
///
/// # Errors
///
/// The first problem, positioned.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    format: Format,
    text: &str,
    name: Option<&str>,
) -> Result<T, RulesError> {
    let source = name.unwrap_or("<string>");
    check_size(text).map_err(|e| e.with_source(source))?;
    parse_doc::<T>(format, text).map_err(|(err, path)| {
        let err = if path.is_empty() || path == "." {
            err
        } else {
            err.with_field(path)
        };
        err.with_source(source)
    })
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the position is reported apart.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn toml_error(text: &str, e: &toml::de::Error, syntax: bool) -> RulesError {
    let mut err = if syntax {
        RulesError::syntax(e.message().trim())
    } else {
        RulesError::invalid(e.message().trim())
    };
    if let Some(span) = e.span() {
        let (l, c) = line_col(text, span.start);
        err = err.with_position(l, c);
    }
    err
}

fn yaml_error(e: &serde_saphyr::Error) -> RulesError {
    use serde_saphyr::Error as E;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let reason = match inner {
        E::Message { msg, .. } => msg.clone(),
        other => {
            let s = other.without_snippet().to_string();
            match s.rfind(" at line ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    };
    let schema = matches!(
        inner,
        E::Message { .. }
            | E::Unexpected { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::SerdeInvalidLength { .. }
            | E::SerdeUnknownVariant { .. }
            | E::SerdeUnknownField { .. }
            | E::SerdeMissingField { .. }
            | E::DuplicateMappingKey { .. }
    );
    let mut err = if schema {
        RulesError::invalid(reason)
    } else {
        RulesError::syntax(reason)
    };
    if let Some(loc) = e.location()
        && loc.line() > 0
    {
        err = err.with_position(loc.line() as usize, loc.column() as usize);
    }
    err
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Rule {
    /// Parses one rule, as a document of its own (the body of the admin API's
    /// `POST /chaos/rules`). Checks across rules (unique ids, ceilings) happen when it is
    /// added, in [`Chaos::add_rule`](crate::Chaos::add_rule).
    ///
    /// ```
    /// use chaos_core::rules::{Format, Rule};
    /// let rule = Rule::parse(Format::Json, r#"{"id": "a", "point": "server", "fault": {"abort": 503}}"#)?;
    /// assert_eq!(rule.id, "a");
    /// let err = Rule::parse(Format::Json, r#"{"id": "a", "point": "server", "fault": {"abort": 99}}"#).unwrap_err();
    /// assert_eq!(err.field(), Some("fault.abort"));
    /// # Ok::<(), chaos_core::rules::RulesError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The document does not parse as one rule; the error has the position and the field.
    pub fn parse(format: Format, text: &str) -> Result<Rule, RulesError> {
        check_size(text).map_err(|e| e.with_source("<string>"))?;
        parse_doc::<Rule>(format, text).map_err(|(err, path)| {
            let err = if path.is_empty() || path == "." {
                err
            } else {
                err.with_field(path)
            };
            err.with_source("<string>")
        })
    }
}

/// Parses a document of any schema type, keeping the position and the path of a failure.
fn parse_doc<T: serde::de::DeserializeOwned>(
    format: Format,
    text: &str,
) -> Result<T, (RulesError, String)> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let json_err = |e: serde_json::Error, path: String| {
                let kind = if e.is_syntax() || e.is_eof() {
                    RulesError::syntax
                } else {
                    RulesError::invalid
                };
                let mut err = kind(json_reason(&e));
                if e.line() > 0 {
                    err = err.with_position(e.line(), e.column());
                }
                (err, path)
            };
            serde_path_to_error::deserialize::<_, MapOnly<T>>(&mut de)
                .map(|m| m.0)
                .map_err(|e| {
                    let path = e.path().to_string();
                    json_err(e.into_inner(), path)
                })
                .and_then(|v| de.end().map(|()| v).map_err(|e| json_err(e, String::new())))
        }
        Format::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| (toml_error(text, &e, true), String::new()));
            de.and_then(|de| {
                serde_path_to_error::deserialize::<_, MapOnly<T>>(de)
                    .map(|m| m.0)
                    .map_err(|e| {
                        let path = e.path().to_string();
                        (toml_error(text, e.inner(), false), path)
                    })
            })
        }
        Format::Yaml => {
            let mut path = String::new();
            let r =
                serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
                    serde_path_to_error::deserialize::<_, MapOnly<T>>(de)
                        .map(|m| m.0)
                        .map_err(|e| {
                            path = e.path().to_string();
                            e.into_inner()
                        })
                });
            r.map_err(|e| (yaml_error(&e), path))
        }
    }
}

/// Turns a serde path (`rules[2].fault.delay`) into the rule's id and the field within it.
fn locate_rule(format: Format, text: &str, err: RulesError, path: &str) -> RulesError {
    let Some(rest) = path.strip_prefix("rules[") else {
        return err.with_field(path);
    };
    let Some((idx, field)) = rest.split_once(']') else {
        return err.with_field(path);
    };
    let field = field.trim_start_matches('.');
    let id = idx
        .parse::<usize>()
        .ok()
        .and_then(|i| rule_id_at(format, text, i));
    let err = match id {
        Some(id) => err.with_rule(id),
        None => err.with_rule(format!("#{}", idx.parse::<usize>().map_or(0, |i| i + 1))),
    };
    err.with_field(field)
}

/// Reads the id of the `i`th rule from a document that failed to load, for error messages.
fn rule_id_at(format: Format, text: &str, i: usize) -> Option<String> {
    let v: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).ok()?,
        Format::Toml => toml::from_str(text).ok()?,
        Format::Yaml => serde_saphyr::from_str_with_options(text, yaml_options()).ok()?,
    };
    v.get("rules")?
        .get(i)?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}
