//! The Sigil plugin manifest: one schema, two encodings (`plugin.toml`, preferred, and
//! `plugin.yaml`), one validator that reports every problem at once with file, line, column and
//! the offending value.
//!
//! ```
//! use sigil_manifest::{Format, Kind, Tier, parse_str};
//!
//! let manifest = parse_str(
//!     r#"
//! id = "weather"
//! name = "Weather"
//! version = "1.0.0"
//! description = "Forecasts for a city."
//! kinds = ["tool"]
//! engine = ">=0.1"
//!
//! [capabilities]
//! request = [{ capability = "net.connect:api.weather.example:443", reason = "fetch forecasts" }]
//!
//! [execution]
//! tier = "wasm"
//! entry = "weather.wasm"
//! "#,
//!     Format::Toml,
//!     "plugin.toml",
//! )?;
//! assert_eq!(manifest.id().as_str(), "weather");
//! assert_eq!(manifest.kinds(), &[Kind::Tool]);
//! assert_eq!(manifest.execution().tier, Tier::Wasm);
//!
//! let errors = parse_str("id = \"Weather\"\n", Format::Toml, "plugin.toml").unwrap_err();
//! assert!(errors.to_string().starts_with("plugin.toml:1:1: missing required field `name`"));
//! # Ok::<(), sigil_manifest::ManifestErrors>(())
//! ```
//!
//! How it works: the text is parsed into a JSON tree while recording where each key and value
//! was written; the tree is checked against [`json_schema`] (the same schema exported for
//! editors) and by meaning checks (semver, capability grammar, paths, duplicates); only a tree
//! that passes both is lifted into a [`ValidatedManifest`].
//!
//! This crate does no I/O except in [`load_dir`], and knows nothing of tiers' runtimes.

#![forbid(unsafe_code)]

mod check;
mod diagnostic;
mod load;
mod pointer;
mod raw;
mod schema;
mod spans;
mod types;
mod validate;
mod validated;

use std::path::Path;

pub use diagnostic::{Diagnostic, ManifestErrors};
pub use load::{MANIFEST_FILES, MAX_MANIFEST_BYTES};
pub use schema::json_schema;
pub use types::{
    Access, HookEvent, InvalidPluginId, Kind, MAX_ID_LEN, PluginId, Protocol, Scope, Tier,
};
pub use validated::{
    BlastRadius, CapabilityRequest, CommandSpec, Egress, Execution, HookSubscription, Lifecycle,
    Limits, Mount, Sandbox, ValidatedManifest,
};

/// A manifest encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `plugin.toml`, the preferred encoding.
    Toml,
    /// `plugin.yaml` or `plugin.yml`.
    Yaml,
}

impl Format {
    /// The encoding a file name implies by its extension (`.toml`, `.yaml`, `.yml`).
    pub fn for_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Reads and validates the manifest of the plugin in `dir`: `plugin.toml`, or else
/// `plugin.yaml` / `plugin.yml`. Diagnostics name the file as `dir.join(name)` displays.
///
/// # Errors
/// When `dir` holds no manifest, more than one, one that cannot be read (or is larger than
/// [`MAX_MANIFEST_BYTES`] or not UTF-8), or one that fails validation: every problem found.
pub fn load_dir(dir: &Path) -> Result<ValidatedManifest, ManifestErrors> {
    load::load_dir(dir, &Rules::NONE)
}

/// [`load_dir`] with rules the host adds, such as the command names it reserves.
///
/// # Errors
/// As for [`load_dir`], plus a violation of `rules`.
pub fn load_dir_with(dir: &Path, rules: &Rules<'_>) -> Result<ValidatedManifest, ManifestErrors> {
    load::load_dir(dir, rules)
}

/// Rules that depend on the host rather than on the manifest format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// Subcommand names the host's command line uses itself, which a plugin may not
    /// contribute. The host derives them from its own command definitions.
    pub reserved_commands: &'a [&'a str],
}

impl Rules<'_> {
    /// No host rules.
    pub const NONE: Rules<'static> = Rules {
        reserved_commands: &[],
    };
}

/// Parses and validates manifest text. `file` is only used to label diagnostics.
///
/// # Errors
/// Every problem found, in document order: one per syntax error, or else one per schema or
/// meaning violation.
pub fn parse_str(
    text: &str,
    format: Format,
    file: &str,
) -> Result<ValidatedManifest, ManifestErrors> {
    validate::parse_str(text, format, file, &Rules::NONE)
}

/// [`parse_str`] with rules the host adds.
///
/// # Errors
/// As for [`parse_str`], plus a violation of `rules`.
pub fn parse_str_with(
    text: &str,
    format: Format,
    file: &str,
    rules: &Rules<'_>,
) -> Result<ValidatedManifest, ManifestErrors> {
    validate::parse_str(text, format, file, rules)
}
