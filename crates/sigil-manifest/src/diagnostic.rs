//! Located validation errors.

use std::fmt;

/// Longest rendering of an offending value kept in a diagnostic, in characters.
const MAX_VALUE_CHARS: usize = 120;

/// One problem found in a manifest, with where it is and what the offending value was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest's path as given (`plugins/weather/plugin.toml`).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// JSON pointer of the offending value in the manifest (`/capabilities/request/0/capability`);
    /// empty for the whole document and for syntax errors.
    pub pointer: String,
    /// Lowercase description of the problem.
    pub message: String,
    /// The offending value (or key) as written, when there is one.
    pub value: Option<String>,
}

impl Diagnostic {
    /// Orders diagnostics as they appear in the document.
    pub(crate) fn sort_key(&self) -> (u32, u32) {
        (self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(value) = &self.value {
            // Most messages already quote what they complain about; repeating it adds nothing.
            if !self.message.contains(&format!("`{value}`")) {
                write!(f, " (value: `{value}`)")?;
            }
        }
        Ok(())
    }
}

/// Every problem found in one manifest, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors {
    /// The problems; never empty when returned by this crate.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestErrors {
    pub(crate) fn new(mut diagnostics: Vec<Diagnostic>) -> ManifestErrors {
        diagnostics.sort_by_key(Diagnostic::sort_key);
        diagnostics.dedup();
        ManifestErrors { diagnostics }
    }

    /// A single problem that is about the file as a whole (missing, unreadable, ambiguous).
    pub(crate) fn whole_file(file: String, message: String) -> ManifestErrors {
        ManifestErrors {
            diagnostics: vec![Diagnostic {
                file,
                line: 1,
                column: 1,
                pointer: String::new(),
                message,
                value: None,
            }],
        }
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    /// Whether there are no problems (never true for a returned error).
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The problems, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.diagnostics.iter()
    }
}

impl<'a> IntoIterator for &'a ManifestErrors {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.diagnostics.iter()
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Renders a value for a diagnostic: strings as written, anything else as compact JSON,
/// cut to a readable length.
pub(crate) fn render_value(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text)
}

/// Cuts `text` to [`MAX_VALUE_CHARS`] characters, marking the cut.
pub(crate) fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_VALUE_CHARS {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(message: &str, value: Option<&str>) -> Diagnostic {
        Diagnostic {
            file: "plugin.toml".into(),
            line: 12,
            column: 5,
            pointer: "/id".into(),
            message: message.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn display() {
        let cases = [
            (
                diag("capability is invalid: empty action", Some("fs.read:")),
                "plugin.toml:12:5: capability is invalid: empty action (value: `fs.read:`)",
            ),
            (
                diag("unknown field `trust_level`", Some("trust_level")),
                "plugin.toml:12:5: unknown field `trust_level`",
            ),
            (
                diag("missing required field `engine`", None),
                "plugin.toml:12:5: missing required field `engine`",
            ),
        ];
        for (diagnostic, expected) in cases {
            assert_eq!(diagnostic.to_string(), expected);
        }
    }

    #[test]
    fn errors_sorted_and_listed_one_per_line() {
        let mut first = diag("a", None);
        first.line = 2;
        let second = diag("b", None);
        let errors = ManifestErrors::new(vec![second, first]);
        assert_eq!(
            errors.to_string(),
            "plugin.toml:2:5: a\nplugin.toml:12:5: b"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(500);
        let rendered = render_value(&serde_json::Value::String(long));
        assert_eq!(rendered.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(rendered.ends_with('…'));
    }
}
