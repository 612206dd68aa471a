//! A process-tier plugin through the `sigil` binary alone: installed, listed and invoked like any
//! other, with the binary serving as its own sandbox entrypoint (no `sigil-sandbox-init` beside
//! it), every call decided and recorded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const MANIFEST: &str = r#"
id = "echo"
name = "Echo"
version = "0.1.0"
description = "Echoes its input from a sandboxed process."
kinds = ["tool"]
engine = "*"

[execution]
tier = "process"
entry = "plugin"

[execution.limits]
timeout_ms = 10000
"#;

fn run(sigil: &Path, home: &Path, args: &[&str]) -> Output {
    let out = Command::new(sigil)
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_SANDBOX_INIT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_process_plugin_installs_lists_and_answers_through_the_sigil_binary_alone() {
    let fixtures = sigil_process_guests::build().unwrap();
    // A directory holding only `sigil` (a hard link: same file system, no copy).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sigil = bin.join("sigil");
    std::fs::hard_link(env!("CARGO_BIN_EXE_sigil"), &sigil).unwrap();
    assert!(!bin.join("sigil-sandbox-init").exists());

    let plugin = dir.path().join("echo");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(&fixtures.echo, plugin.join("plugin")).unwrap();
    std::fs::write(plugin.join("plugin.toml"), MANIFEST).unwrap();
    let home = dir.path().join("home");

    run(
        &sigil,
        &home,
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
    );
    let listed = String::from_utf8(run(&sigil, &home, &["plugin", "list"]).stdout).unwrap();
    let line = listed
        .lines()
        .find(|l| l.starts_with("echo "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("process") && line.contains("running"),
        "{line}"
    );

    let out = run(
        &sigil,
        &home,
        &[
            "tool",
            "invoke",
            "echo/echo",
            "--input",
            r#"{"said": "hi"}"#,
        ],
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value, serde_json::json!({ "said": "hi" }));

    let audit = String::from_utf8(run(&sigil, &home, &["audit", "export"]).stdout).unwrap();
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["capability"] == "tool.echo.echo" && r["decision"] == "allow"),
        "{audit}"
    );
    run(&sigil, &home, &["audit", "verify"]);
}

/// Reading the audit log and explaining a decision start no plugin: a process plugin that
/// leaves a mark each time its sandbox starts leaves none while they run, though its
/// authority is known to the explanation. The install and `plugin list`, which do start it,
/// show that the mark is left when it starts.
#[test]
fn reading_the_audit_log_and_explaining_a_decision_start_no_plugin() {
    let fixtures = sigil_process_guests::build().unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sigil = Path::new(env!("CARGO_BIN_EXE_sigil"));
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let marks = marks.canonicalize().unwrap();
    let started = marks.join("started");

    let plugin = dir.path().join("watched");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(&fixtures.echo, plugin.join("plugin")).unwrap();
    let script = plugin.join("start.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho started >> '{}'\nexec /plugin/plugin \"$@\"\n",
            started.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        MANIFEST
            .replace("id = \"echo\"", "id = \"watched\"")
            .replace("entry = \"plugin\"", "entry = \"start.sh\"")
            + &format!(
                "\n[[capabilities.request]]\ncapability = \"fs.write:{}/**\"\nreason = \"leaves a mark when it starts\"\n",
                marks.display()
            ),
    )
    .unwrap();
    let home = dir.path().join("home");
    let starts = || {
        std::fs::read_to_string(&started)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };

    run(
        sigil,
        &home,
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
    );
    assert!(
        starts() >= 1,
        "installing starts the plugin, and leaves a mark"
    );
    std::fs::remove_file(&started).unwrap();

    run(sigil, &home, &["audit", "list"]);
    run(sigil, &home, &["audit", "verify"]);
    let capability = format!("fs.write:{}/x", marks.display());
    let explained = run(
        sigil,
        &home,
        &["policy", "explain", &capability, "--plugin", "watched"],
    );
    let explained = String::from_utf8(explained.stdout).unwrap();
    assert!(
        explained.starts_with("allow"),
        "the plugin's grant is known without starting it: {explained}"
    );
    assert_eq!(starts(), 0, "a read-only command started the plugin");

    run(sigil, &home, &["plugin", "list"]);
    assert!(
        starts() >= 1,
        "listing plugins starts them, and leaves a mark"
    );
}

/// `sigil plugin remove` with no daemon: the plugin is gone from the list, its installed copy
/// and its consent are deleted, and removing it again says it is unknown.
#[test]
fn plugin_remove_without_a_daemon_deletes_the_copy_and_the_consent() {
    let fixtures = sigil_process_guests::build().unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sigil = Path::new(env!("CARGO_BIN_EXE_sigil"));
    let plugin = dir.path().join("echo");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(&fixtures.echo, plugin.join("plugin")).unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        format!(
            "{MANIFEST}\n[[capabilities.request]]\ncapability = \"kv.read:echo.*\"\nreason = \"asks\"\n"
        ),
    )
    .unwrap();
    let home = dir.path().join("home");
    run(
        sigil,
        &home,
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
    );
    let config = || std::fs::read_to_string(home.join("sigil.toml")).unwrap();
    assert!(config().contains("[plugins.echo]"), "{}", config());
    assert!(home.join("plugins/echo").is_dir());

    let out = run(sigil, &home, &["plugin", "remove", "echo"]);
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains("removed echo") && said.contains("installed copy deleted"),
        "{said}"
    );
    assert!(!home.join("plugins/echo").exists());
    assert!(!config().contains("plugins.echo"), "{}", config());
    let listed = String::from_utf8(run(sigil, &home, &["plugin", "list"]).stdout).unwrap();
    assert!(!listed.lines().any(|l| l.starts_with("echo ")), "{listed}");

    let again = Command::new(sigil)
        .args(["plugin", "remove", "echo"])
        .env("SIGIL_HOME", &home)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("echo"), "{error}");
}
