//! Discovery and loading: a broken plugin never stops the others, and each failure says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use serde_json::json;
use sigil_runtime::{Builtin, Config, InvokeError, Source, State};

fn write_plugin(root: &Path, dir: &str, file: &str, text: &str) {
    let dir = root.join("plugins").join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

const WASM_PLUGIN: &str = r#"
id = "weather"
name = "Weather"
version = "1.0.0"
description = "Forecasts."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "weather.wasm"
"#;

#[test]
fn a_broken_manifest_is_reported_and_the_rest_still_load() {
    let dir = tempfile::tempdir().unwrap();
    write_plugin(
        dir.path(),
        "broken",
        "plugin.toml",
        "id = \"broken\"\nversion = \"one\"\ntrust_level = \"trusted\"\n",
    );
    write_plugin(
        dir.path(),
        "yaml-broken",
        "plugin.yaml",
        "id: yb\nkinds: [tool\n",
    );
    write_plugin(dir.path(), "weather", "plugin.toml", WASM_PLUGIN);
    std::fs::create_dir_all(dir.path().join("plugins/empty")).unwrap();
    let (probe, _) = common::probe();
    let sigil = common::open(dir.path(), common::CONFIG, vec![probe]);

    let failures = sigil.manager().failures();
    let by_dir = |name: &str| {
        failures
            .iter()
            .find(|f| f.dir.ends_with(name))
            .unwrap_or_else(|| panic!("no failure for {name}: {failures:?}"))
    };
    let broken = by_dir("broken");
    assert!(
        broken
            .diagnostics
            .iter()
            .any(|d| d.contains("plugin.toml:2:") && d.contains("one")),
        "{:?}",
        broken.diagnostics
    );
    assert!(
        broken
            .diagnostics
            .iter()
            .any(|d| d.contains("plugin.toml:3:1") && d.contains("trust_level")),
        "{:?}",
        broken.diagnostics
    );
    assert!(
        broken.diagnostics.len() >= 3,
        "every problem at once: {:?}",
        broken.diagnostics
    );
    assert!(
        by_dir("yaml-broken").diagnostics[0].contains("plugin.yaml:"),
        "{:?}",
        by_dir("yaml-broken")
    );
    assert!(
        by_dir("empty").diagnostics[0].contains("plugin.toml"),
        "{:?}",
        by_dir("empty")
    );

    // The probe still runs; the wasm plugin is listed with why it is not running.
    let probe = sigil.manager().get("probe").unwrap();
    assert_eq!(probe.lifecycle().state(), State::Running);
    assert_eq!(*probe.source(), Source::Builtin);
    let weather = sigil.manager().get("weather").unwrap();
    assert_eq!(weather.lifecycle().state(), State::Error);
    assert_eq!(
        weather.lifecycle().error().unwrap(),
        "the `wasm` tier is not available in this build of sigil"
    );
    let rt = common::rt();
    let actor = sigil.local_actor(None, None);
    let err = rt
        .block_on(sigil.invoke(&actor, "weather/forecast", json!({})))
        .unwrap_err();
    assert_eq!(
        err,
        InvokeError::Denied {
            rule: "plugin `weather` is not registered".into()
        }
    );
    assert!(
        rt.block_on(sigil.invoke(&actor, "probe/echo", json!({ "message": "m" })))
            .is_ok()
    );
}

#[test]
fn duplicate_ids_engine_ranges_and_dependencies_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let clash = common::PROBE_MANIFEST.replace(
        "tier = \"builtin\"",
        "tier = \"process\"\nentry = \"probe\"",
    );
    write_plugin(dir.path(), "clash", "plugin.toml", &clash);
    let future = WASM_PLUGIN
        .replace("id = \"weather\"", "id = \"future\"")
        .replace("engine = \"*\"", "engine = \">=9.0\"");
    write_plugin(dir.path(), "future", "plugin.toml", &future);
    write_plugin(
        dir.path(),
        "dir-builtin",
        "plugin.toml",
        &common::PROBE_MANIFEST.replace("id = \"probe\"", "id = \"sneaky\""),
    );
    let (probe, _) = common::probe();
    let needs = common::PROBE_MANIFEST
        .replace("id = \"probe\"", "id = \"needy\"")
        .replace(
            "[capabilities]",
            "[dependencies]\nmissing = \"^1\"\n\n[capabilities]",
        );
    let needy = Builtin {
        manifest: Box::leak(needs.into_boxed_str()),
        plugin: common::probe().0.plugin,
    };
    let sigil = common::open(dir.path(), common::CONFIG, vec![probe, needy]);

    let clash = sigil
        .manager()
        .failures()
        .into_iter()
        .find(|f| f.dir.ends_with("clash"))
        .expect("clash reported");
    assert_eq!(
        clash.diagnostics,
        vec!["plugin id `probe` is already provided by a compiled-in plugin".to_string()]
    );
    assert_eq!(
        sigil.manager().get("probe").unwrap().lifecycle().state(),
        State::Running
    );

    let state = |id: &str| {
        let entry = sigil
            .manager()
            .get(id)
            .unwrap_or_else(|| panic!("{id} listed"));
        (
            entry.lifecycle().state(),
            entry.lifecycle().error().unwrap_or_default(),
        )
    };
    assert_eq!(
        state("future"),
        (
            State::Error,
            format!(
                "requires sigil >=9.0, but this is sigil {}",
                env!("CARGO_PKG_VERSION")
            )
        )
    );
    assert_eq!(
        state("sneaky"),
        (
            State::Error,
            "tier `builtin` is only for plugins compiled into sigil".into()
        )
    );
    assert_eq!(
        state("needy"),
        (
            State::Error,
            "depends on `missing` ^1, which is not installed".into()
        )
    );
    // A plugin failed after registration is unregistered: its calls are denied.
    let actor = sigil.local_actor(None, None);
    let err = common::rt()
        .block_on(sigil.invoke(&actor, "needy/echo", json!({ "message": "m" })))
        .unwrap_err();
    assert_eq!(
        err,
        InvokeError::Denied {
            rule: "plugin `needy` is not registered".into()
        }
    );
}

#[test]
fn directory_plugins_get_only_the_consent_the_operator_gave() {
    let dir = tempfile::tempdir().unwrap();
    let (probe, _) = common::probe();
    let sigil = common::open(dir.path(), common::CONFIG, vec![probe]);
    let actor = sigil.local_actor(None, None);
    // Builtins are consented by construction: the probe may use what it requested.
    assert!(
        sigil
            .explain("kv.read:x", "probe", &actor)
            .unwrap()
            .is_allowed()
    );
    let config = Config::parse(common::CONFIG, Path::new("sigil.toml")).unwrap();
    assert_eq!(
        config
            .consent("dirplugin")
            .patterns()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["kv.*"]
    );
    assert!(
        config.consent("stranger").is_empty(),
        "no consent given means none"
    );
}

#[test]
fn configuration_errors_name_the_file_table_and_value() {
    // (sigil.toml text, expected error substring)
    let table = [
        (
            "[workspaces.home]\nallow = [\"fs.read:data\"]\n",
            "workspaces.home.allow[0]: capability `fs.read:data`: path `data` must be absolute",
        ),
        (
            "[users.a]\npermissions = [\"*\", \"fs..x\"]\n",
            "users.a.permissions[1]: capability `fs..x`",
        ),
        (
            "[policy]\ndeny = [\"\"]\n",
            "policy.deny[0]: capability ``: a capability cannot be empty",
        ),
        (
            "[plugins.p]\nconsent = [\"*.x:/a\"]\n",
            "plugins.p.consent[0]",
        ),
        ("[users.a]\npermisions = []\n", "unknown field `permisions`"),
        ("bogus = 1\n", "unknown field `bogus`"),
        (
            "[defaults]\nuser = \"ghost\"\n",
            "defaults.user: user `ghost` is not defined; add a [users.ghost] table",
        ),
        ("[workspaces\n", "line 1"),
        (
            "[workspaces.main]\n[users.a]\nworkspaces = [\"main\", \"lab\"]\n",
            "users.a.workspaces[1]: workspace `lab` is not defined; add a [workspaces.lab] table",
        ),
        (
            "[audit]\ndurability = \"memory\"\n",
            // Where and what is expected, never the value: it might be a misplaced secret.
            "line 2, column 14: unknown variant (value not shown), expected `disk` or `process`",
        ),
    ];
    for (text, expected) in table {
        let err = Config::parse(text, Path::new("/etc/sigil/sigil.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/sigil/sigil.toml: "), "{err}");
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn a_fresh_home_gets_a_default_configuration_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let home = sigil_runtime::Home::resolve(Some(&dir.path().join("new"))).unwrap();
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert_eq!(text, sigil_runtime::DEFAULT_CONFIG);
    let config = Config::load(&home.config_path()).unwrap();
    assert_eq!(
        (config.default_user(), config.default_workspace()),
        (Some("local"), Some("default"))
    );
    assert!(home.plugins_dir().is_dir());
    assert_eq!(config.audit_durability(), sigil_audit::Durability::Disk);
}

#[test]
fn a_user_belongs_to_the_workspaces_it_lists_else_to_the_default_one() {
    let config = Config::parse(
        r#"
[defaults]
user = "local"
workspace = "main"

[workspaces.main]
[workspaces.lab]
[workspaces.ops]

[users.local]
[users.lister]
workspaces = ["ops", "lab", "ops"]
[users.member]
workspaces = ["lab", "main"]
[users.nowhere]
workspaces = []
"#,
        Path::new("sigil.toml"),
    )
    .unwrap();
    // (user, its workspaces, the one it acts in when none is named)
    let table: [(&str, &[&str], Option<&str>); 5] = [
        ("local", &["main"], Some("main")),
        ("lister", &["ops", "lab"], Some("ops")),
        ("member", &["lab", "main"], Some("main")),
        ("nowhere", &[], None),
        ("stranger", &[], None),
    ];
    for (user, workspaces, home) in table {
        assert_eq!(config.user_workspaces(user), workspaces, "{user}");
        assert_eq!(config.home_workspace(user), home, "{user}");
        for workspace in ["main", "lab", "ops", "elsewhere"] {
            assert_eq!(
                config.is_member(user, workspace),
                workspaces.contains(&workspace),
                "{user} in {workspace}"
            );
        }
    }
    // Without [defaults] workspace, a user without the field belongs nowhere.
    let bare = Config::parse("[workspaces.main]\n[users.a]\n", Path::new("sigil.toml")).unwrap();
    assert!(bare.user_workspaces("a").is_empty());
}

#[test]
fn audit_durability_comes_from_the_configuration() {
    let path = Path::new("/etc/sigil/sigil.toml");
    let table = [
        ("", sigil_audit::Durability::Disk),
        ("[audit]\n", sigil_audit::Durability::Disk),
        (
            "[audit]\ndurability = \"disk\"\n",
            sigil_audit::Durability::Disk,
        ),
        (
            "[audit]\ndurability = \"process\"\n",
            sigil_audit::Durability::Process,
        ),
    ];
    for (text, expected) in table {
        assert_eq!(
            Config::parse(text, path).unwrap().audit_durability(),
            expected,
            "{text:?}"
        );
    }
}
