//! The validation pipeline: text → located tree → schema and meaning checks → typed manifest.

use std::collections::HashSet;

use crate::Format;
use crate::check;
use crate::diagnostic::{Diagnostic, ManifestErrors};
use crate::raw::RawManifest;
use crate::schema;
use crate::spans::{self, Located};
use crate::validated::ValidatedManifest;

/// Parses and validates manifest text; see [`crate::parse_str`].
pub(crate) fn parse_str(
    text: &str,
    format: Format,
    file: &str,
    rules: &crate::Rules<'_>,
) -> Result<ValidatedManifest, ManifestErrors> {
    let located = match format {
        Format::Toml => spans::parse_toml(text, file),
        Format::Yaml => spans::parse_yaml(text, file),
    }
    .map_err(ManifestErrors::new)?;
    validate(located, file, rules)
}

fn validate(
    located: Located,
    file: &str,
    rules: &crate::Rules<'_>,
) -> Result<ValidatedManifest, ManifestErrors> {
    let Located { value, index } = located;
    let meaning = check::check(&value, &index, file, rules);
    // Where a meaning check and the schema both object to one value (an id that is not
    // kebab-case breaks the schema's pattern too), the meaning check says it better.
    let explained: HashSet<&str> = meaning.iter().map(|d| d.pointer.as_str()).collect();
    let mut diagnostics: Vec<Diagnostic> = schema::check(&value, &index, file)
        .into_iter()
        .filter(|d| !explained.contains(d.pointer.as_str()))
        .collect();
    diagnostics.extend(meaning);
    if !diagnostics.is_empty() {
        return Err(ManifestErrors::new(diagnostics));
    }
    let internal = |message: String| {
        ManifestErrors::whole_file(
            file.to_owned(),
            format!("internal error: a manifest that passed validation did not load: {message}"),
        )
    };
    let raw: RawManifest = serde_json::from_value(value).map_err(|e| internal(e.to_string()))?;
    ValidatedManifest::lift(raw, file).map_err(internal)
}
