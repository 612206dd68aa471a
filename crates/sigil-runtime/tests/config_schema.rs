//! A plugin's configuration in `sigil.toml` is checked against its manifest's `config.schema`
//! at load: a plugin never starts on a configuration it does not accept, and the error says
//! where and which rule, never the value (which may be a secret).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sigil_runtime::{Home, Runtime, State};

const MANIFEST: &str = r#"
id = "configured"
name = "Configured"
version = "0.1.0"
description = "Has a configuration schema."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "plugin.wasm"

[config.schema]
type = "object"
additionalProperties = false
required = ["salutation"]

[config.schema.properties.salutation]
type = "string"
minLength = 1

[config.schema.properties.api_key]
type = "string"
pattern = "^sk-"
"#;

/// Opens a data directory holding the plugin, with `config` as its configuration, and no tier
/// at all: a plugin whose configuration passes gets as far as asking for its tier.
fn load_with(config: &str) -> (String, State) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugins/configured");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(plugin.join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(plugin.join("plugin.wasm"), b"").unwrap();
    std::fs::write(
        dir.path().join("sigil.toml"),
        format!("[plugins.configured]\nconfig = {{ {config} }}\n"),
    )
    .unwrap();
    let sigil = open(dir.path());
    let entry = sigil.manager().get("configured").unwrap();
    (
        entry.lifecycle().error().unwrap_or_default(),
        entry.lifecycle().state(),
    )
}

fn open(root: &Path) -> Runtime {
    Runtime::open_with(Home::resolve(Some(root)).unwrap(), Vec::new(), Vec::new()).unwrap()
}

#[test]
fn a_configuration_that_breaks_the_schema_stops_the_load_and_names_each_problem() {
    let (error, state) = load_with(r#"salutation = "", api_key = "hunter2-not-a-key", extra = 1"#);
    assert_eq!(state, State::Error);
    assert!(
        error.contains(
            "`[plugins.configured.config]` in sigil.toml does not match its config schema"
        ),
        "{error}"
    );
    for expected in [
        "at `/salutation`: breaks the schema's `/properties/salutation/minLength`",
        "at `/api_key`: breaks the schema's `/properties/api_key/pattern`",
        "at `/`: breaks the schema's `/additionalProperties`",
    ] {
        assert!(error.contains(expected), "{expected} missing from: {error}");
    }
    assert!(
        !error.contains("hunter2"),
        "a configured value leaked: {error}"
    );

    let (error, _) = load_with("");
    assert!(error.contains("/required"), "{error}");
}

#[test]
fn a_configuration_that_fits_lets_the_load_go_on() {
    let (error, state) = load_with(r#"salutation = "ahoy", api_key = "sk-123""#);
    assert_eq!(state, State::Error);
    assert!(error.contains("`wasm` tier is not available"), "{error}");
}
