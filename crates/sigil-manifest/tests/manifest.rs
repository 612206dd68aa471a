//! Complete manifests in both encodings, the exported schema, and loading from a directory.

use std::path::Path;

use serde_json::json;
use sigil_manifest::{
    Access, BlastRadius, Egress, Format, HookEvent, HookSubscription, Kind, ManifestErrors, Scope,
    Tier, ValidatedManifest, json_schema, load_dir, parse_str,
};

const FULL_TOML: &str = include_str!("fixtures/full.toml");
const FULL_YAML: &str = include_str!("fixtures/full.yaml");

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn parse(text: &str, format: Format, file: &str) -> Result<ValidatedManifest, ManifestErrors> {
    parse_str(text, format, file)
}

#[test]
fn full_toml_reads_every_field() -> TestResult {
    let m = parse(FULL_TOML, Format::Toml, "plugin.toml")?;
    assert_eq!(m.file(), "plugin.toml");
    assert_eq!(m.id().as_str(), "github-ops");
    assert_eq!(m.name(), "GitHub operations");
    assert_eq!(m.version().to_string(), "1.4.0-beta.2");
    assert_eq!(
        m.description(),
        "Reads issues and restarts the web containers of a homelab."
    );
    assert_eq!(
        m.authors(),
        ["Ada Lovelace <ada@example.com>", "Grace Hopper"]
    );
    assert_eq!(m.license(), Some("Apache-2.0"));
    assert_eq!(m.homepage(), Some("https://example.com/github-ops"));
    assert_eq!(m.kinds(), [Kind::Tool, Kind::Hook, Kind::Command]);
    assert!(m.engine().matches(&semver::Version::new(0, 2, 5)));
    assert!(!m.engine().matches(&semver::Version::new(0, 3, 0)));
    let dependencies: Vec<(String, String)> = m
        .dependencies()
        .iter()
        .map(|(id, range)| (id.to_string(), range.to_string()))
        .collect();
    assert_eq!(
        dependencies,
        [
            ("http-client".to_owned(), "~0.4".to_owned()),
            ("secret-store".to_owned(), "^1.2".to_owned()),
        ]
    );

    let requested: Vec<(&str, &str)> = m
        .requested()
        .iter()
        .map(|r| (r.pattern.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(requested.len(), 5);
    assert_eq!(
        requested[0],
        ("net.connect:api.github.com:443", "call the GitHub API")
    );
    assert_eq!(requested[2], ("fs.read:/data/**", "read cached issues"));
    // The legacy `resource:action` form is kept in its canonical native form.
    assert_eq!(
        requested[3].0,
        sigil_policy::Pattern::parse("docker:restart")
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default()
    );
    assert_eq!(m.denied().len(), 1);
    assert_eq!(m.denied()[0].pattern.as_str(), "fs.write:/data/secrets/**");
    assert_eq!(m.denied()[0].reason, "never touches stored secrets");

    let execution = m.execution();
    assert_eq!(execution.tier, Tier::Wasm);
    assert_eq!(
        execution.entry.as_deref(),
        Some(Path::new("target/github_ops.wasm"))
    );
    let limits = &execution.limits;
    assert_eq!(limits.memory_mib, Some(256));
    assert_eq!(limits.fuel, Some(50_000_000));
    assert_eq!(limits.cpu_ms, Some(2000));
    assert_eq!(limits.timeout_ms, Some(30_000));
    assert_eq!(limits.output_bytes, Some(1_048_576));
    assert_eq!(limits.processes, Some(8));
    assert_eq!(limits.open_files, Some(64));
    let mounts: Vec<(&Path, Access)> = execution
        .sandbox
        .fs
        .iter()
        .map(|m| (m.path.as_path(), m.access))
        .collect();
    assert_eq!(
        mounts,
        [
            (Path::new("/data"), Access::Read),
            (Path::new("/data/cache"), Access::Write)
        ]
    );
    assert_eq!(
        execution.sandbox.egress,
        [
            Egress {
                host: "api.github.com".into(),
                port: Some(443)
            },
            Egress {
                host: "*.githubusercontent.com".into(),
                port: None
            },
        ]
    );
    assert_eq!(execution.env["RUST_LOG"], "info");
    assert_eq!(execution.env["GITHUB_API"], "https://api.github.com");

    let schema = m.config_schema().cloned().unwrap_or_default();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["token"]["secret"], true);
    assert_eq!(m.secret_fields(), ["token"]);

    assert_eq!(
        m.actions()["restart"],
        BlastRadius {
            scope: Scope::Container,
            mutates_state: true,
            reversible: false
        }
    );
    assert_eq!(m.actions()["list-issues"].scope, Scope::Network);
    assert!(m.lifecycle().hot_reload);
    assert_eq!(m.lifecycle().drain_timeout_ms, 10_000);
    assert_eq!(
        m.hooks(),
        [
            HookSubscription {
                event: HookEvent::BeforeToolExecute,
                priority: -10,
                timeout_ms: Some(500)
            },
            HookSubscription {
                event: HookEvent::SessionEnd,
                priority: 0,
                timeout_ms: None
            },
        ]
    );
    let commands = m.commands();
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0].name, "gh-sync");
    assert_eq!(commands[0].description, "Sync issues now.");
    assert!(commands[0].require_auth);
    assert_eq!(
        commands[0].capability.as_ref().map(|p| p.as_str()),
        Some("tool.github-ops.sync")
    );
    assert!(!commands[1].require_auth);
    assert_eq!(commands[1].capability, None);
    Ok(())
}

#[test]
fn toml_and_yaml_encodings_are_equal() -> TestResult {
    let toml = parse(FULL_TOML, Format::Toml, "plugin.toml")?;
    let yaml = parse(FULL_YAML, Format::Yaml, "plugin.yaml")?;
    assert_eq!(toml.to_json(), yaml.to_json());
    // Everything but the file it came from.
    assert_eq!(yaml.file(), "plugin.yaml");
    let relabelled = parse(FULL_YAML, Format::Yaml, "plugin.toml")?;
    assert_eq!(toml, relabelled);
    Ok(())
}

#[test]
fn defaults_fill_what_is_left_out() -> TestResult {
    let m = parse(
        "id = \"tiny\"\nname = \"Tiny\"\nversion = \"0.1.0\"\ndescription = \"d\"\n\
         kinds = [\"skill\"]\nengine = \"*\"\n[execution]\ntier = \"builtin\"\n",
        Format::Toml,
        "plugin.toml",
    )?;
    assert_eq!(m.execution().entry, None);
    assert_eq!(m.execution().limits, sigil_manifest::Limits::default());
    assert!(m.execution().sandbox.fs.is_empty());
    assert!(m.execution().sandbox.egress.is_empty());
    assert!(m.requested().is_empty() && m.denied().is_empty());
    assert!(m.dependencies().is_empty());
    assert_eq!(m.config_schema(), None);
    assert!(m.secret_fields().is_empty());
    assert!(!m.lifecycle().hot_reload);
    assert_eq!(m.lifecycle().drain_timeout_ms, 5000);
    assert_eq!(m.license(), None);
    assert_eq!(
        m.to_json(),
        json!({
            "id": "tiny", "name": "Tiny", "version": "0.1.0", "description": "d",
            "kinds": ["skill"], "engine": "*",
            "execution": {"tier": "builtin"},
            "lifecycle": {"hot_reload": false, "drain_timeout_ms": 5000},
        })
    );
    Ok(())
}

#[test]
fn json_schema_is_a_valid_schema_that_accepts_valid_manifests() -> TestResult {
    let schema = json_schema();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "not a valid json schema"
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["$defs"]["Execution"]["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["id"]["description"],
        "Unique plugin id: kebab-case (lowercase letters, digits and `-`), at most 64 characters."
    );

    let validator = jsonschema::validator_for(&schema)?;
    let manifest = parse(FULL_TOML, Format::Toml, "plugin.toml")?.to_json();
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let mut with_trust = manifest.clone();
    with_trust["trust_level"] = json!("high");
    assert!(!validator.is_valid(&with_trust));
    let mut with_null = manifest;
    with_null["license"] = json!(null);
    assert!(!validator.is_valid(&with_null));
    Ok(())
}

#[test]
fn inspect_json_is_serialize() -> TestResult {
    let m = parse(FULL_TOML, Format::Toml, "plugin.toml")?;
    let via_serde = serde_json::to_value(&m).unwrap_or_default();
    assert_eq!(via_serde, m.to_json());
    assert_eq!(
        via_serde["capabilities"]["request"][0]["capability"],
        "net.connect:api.github.com:443"
    );
    assert_eq!(
        via_serde["execution"]["sandbox"]["egress"][1],
        "*.githubusercontent.com:*"
    );
    Ok(())
}

mod load {
    use super::*;

    const MINIMAL_TOML: &str = "id = \"from-toml\"\nname = \"T\"\nversion = \"1.0.0\"\n\
        description = \"d\"\nkinds = [\"tool\"]\nengine = \"*\"\n[execution]\ntier = \"builtin\"\n";
    const MINIMAL_YAML: &str = "id: from-yaml\nname: Y\nversion: 1.0.0\ndescription: d\n\
        kinds: [tool]\nengine: '*'\nexecution:\n  tier: builtin\n";

    fn dir_with(files: &[(&str, &str)]) -> std::io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text)?;
        }
        Ok(dir)
    }

    #[test]
    fn finds_each_encoding() -> TestResult {
        let cases = [
            ("plugin.toml", MINIMAL_TOML, "from-toml"),
            ("plugin.yaml", MINIMAL_YAML, "from-yaml"),
            ("plugin.yml", MINIMAL_YAML, "from-yaml"),
        ];
        for (name, text, id) in cases {
            let dir = dir_with(&[(name, text)])?;
            let manifest = load_dir(dir.path())?;
            assert_eq!(manifest.id().as_str(), id);
            assert_eq!(manifest.file(), dir.path().join(name).display().to_string());
        }
        Ok(())
    }

    #[test]
    fn two_manifests_are_an_error() -> TestResult {
        let dir = dir_with(&[("plugin.toml", MINIMAL_TOML), ("plugin.yaml", MINIMAL_YAML)])?;
        let errors = load_dir(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(errors.contains("more than one manifest"), "{errors}");
        assert!(
            errors.contains("plugin.toml") && errors.contains("plugin.yaml"),
            "{errors}"
        );
        Ok(())
    }

    #[test]
    fn no_manifest_is_an_error_naming_the_dir() -> TestResult {
        let dir = dir_with(&[("README.md", "hello")])?;
        let errors = load_dir(dir.path())
            .err()
            .map(|e| e.diagnostics)
            .unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.starts_with("no manifest in"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0]
                .message
                .contains(&dir.path().display().to_string())
        );
        Ok(())
    }

    #[test]
    fn diagnostics_name_the_path_in_the_dir() -> TestResult {
        let dir = dir_with(&[("plugin.toml", &MINIMAL_TOML.replace("1.0.0", "1.0"))])?;
        let errors = load_dir(dir.path())
            .err()
            .map(|e| e.diagnostics)
            .unwrap_or_default();
        assert_eq!(errors.len(), 1);
        let path = dir.path().join("plugin.toml").display().to_string();
        assert_eq!(errors[0].file, path);
        assert!(
            errors[0]
                .to_string()
                .starts_with(&format!("{path}:3:11: version `1.0`")),
            "{}",
            errors[0]
        );
        Ok(())
    }

    #[test]
    fn oversized_and_non_utf8_manifests_are_refused() -> TestResult {
        let huge = format!("# {}\n", "x".repeat(2 * 1024 * 1024));
        let dir = dir_with(&[("plugin.toml", &huge)])?;
        let errors = load_dir(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(errors.contains("larger than 1024 KiB"), "{errors}");

        let dir = dir_with(&[])?;
        std::fs::write(dir.path().join("plugin.toml"), b"id = \"\xff\"\n")?;
        let errors = load_dir(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(errors.contains("not valid utf-8"), "{errors}");
        Ok(())
    }
}
