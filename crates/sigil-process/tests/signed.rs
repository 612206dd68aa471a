//! A verified process plugin runs only what its signature covers: every start, restarts
//! included, runs a private copy of its files checked against the signed digest list. A file
//! edited after load never runs; the plugin is refused, no longer listed as verified, and the
//! audit log says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::json;
use sigil_audit::{Filter, Verdict};
use sigil_process::RestartPolicy;
use sigil_runtime::{State, Trust};
use sigil_trust::{KeyPair, sign_dir};

use common::World;
use common::python::{copy_dir, repo};

/// The Python hostile fixture installed as `hostile`, granted `<root>/writable/**`, signed by
/// a key the operator trusts.
fn signed_hostile() -> World {
    let dir = common::world_dir();
    let root = dir.path().canonicalize().unwrap();
    let writable = root.join("writable");
    std::fs::create_dir_all(&writable).unwrap();
    let plugin_dir = root.join("home/plugins/hostile");
    copy_dir(
        &repo().join("crates/sigil-process/tests/fixtures/python/hostile"),
        &plugin_dir,
    );
    let grant = format!("fs.write:{}/**", writable.display());
    let manifest = std::fs::read_to_string(plugin_dir.join("plugin.toml")).unwrap();
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            "{manifest}\n[[capabilities.request]]\ncapability = \"{grant}\"\nreason = \"writes its output\"\n"
        ),
    )
    .unwrap();
    let release = KeyPair::generate_unencrypted().unwrap();
    sign_dir(&plugin_dir, &release).unwrap();
    std::fs::write(
        root.join("home/sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[plugins.hostile]
consent = ["{grant}"]

[trust.keys]
release = "{key}"
"#,
            key = release.public().to_base64()
        ),
    )
    .unwrap();
    common::open_home(dir, root, "hostile", RestartPolicy::DEFAULT)
}

fn summary(w: &World) -> sigil_runtime::PluginSummary {
    w.sigil.manager().get("hostile").unwrap().summary()
}

#[test]
fn a_signed_plugin_edited_after_load_never_runs_the_edit_at_a_restart() {
    let w = signed_hostile();
    w.assert_running();
    assert_eq!(summary(&w).trust.level(), "verified");
    let before = w.root.join("writable/before.txt");
    let out = w.ok("write_file", json!({ "path": before, "content": "x" }));
    assert_eq!(out["ok"], true, "{out}");

    // The edit would leave a marker the moment it ran.
    let marker = w.root.join("writable/edited-code-ran");
    let main = w.root.join("home/plugins/hostile/main.py");
    let code = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        code.replacen(
            "plugin = Plugin()",
            &format!(
                "plugin = Plugin()\nopen({:?}, 'w').write('the edited code ran')",
                marker.display().to_string()
            ),
            1,
        ),
    )
    .unwrap();

    // The plugin ends its own process; the supervisor starts it again.
    let error = w.error_of("exit_now", json!({}));
    assert!(error.contains("during the call"), "{error}");
    let after = w.root.join("writable/after.txt");
    let error = w.error_of("write_file", json!({ "path": after, "content": "x" }));
    assert!(
        error.contains("main.py was changed after signing"),
        "{error}"
    );
    assert!(!marker.exists(), "the edited code ran");
    assert!(!after.exists());

    let listed = summary(&w);
    assert_eq!(listed.state, State::Error, "{listed:?}");
    assert_eq!(listed.trust, Trust::Sandboxed);
    let reason = listed.error.unwrap();
    assert!(
        reason.contains("main.py was changed after signing"),
        "{reason}"
    );
    assert!(reason.contains("no longer verified"), "{reason}");
    let recorded = w
        .records(Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .into_iter()
        .any(|r| {
            r.record.plugin.as_deref() == Some("hostile")
                && r.record.rule.contains("main.py was changed after signing")
        });
    assert!(recorded, "the refusal is in the audit log");
}

#[test]
fn a_signed_plugin_runs_from_a_copy_its_directory_cannot_change() {
    let w = signed_hostile();
    // The plugin's directory, as the plugin sees it, holds exactly the signed files.
    let out = w.ok("read_file", json!({ "path": "/plugin" }));
    let entries: Vec<String> = serde_json::from_value(out["entries"].clone()).unwrap();
    assert_eq!(entries, ["README.md", "main.py", "plugin.toml"], "{out}");
    // A file added to the installed directory is not there for the running plugin.
    std::fs::write(w.root.join("home/plugins/hostile/extra.py"), "x = 1\n").unwrap();
    let out = w.ok("read_file", json!({ "path": "/plugin/extra.py" }));
    assert_eq!(out["ok"], false, "{out}");
}
