//! `execution.interpreter`: a script entry run by a program inside the sandbox, and the
//! manifest rules for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::json;
use sigil_runtime::State;

use common::Setup;

#[test]
fn an_interpreter_runs_the_entry() {
    // The "interpreter" is the echo plugin itself, installed beside the script; it is given
    // `/plugin/plugin` as its argument and serves as usual.
    let binaries = common::binaries();
    let mut setup = Setup::new("scripted", &binaries.echo);
    setup.interpreter = Some("/plugin/runner");
    let w = common::open(&setup);
    w.assert_running();
    assert_eq!(w.ok("echo", json!({ "a": 1 })), json!({ "a": 1 }));
}

#[test]
fn an_entry_that_is_not_executable_needs_an_interpreter() {
    use std::os::unix::fs::PermissionsExt;
    let binaries = common::binaries();
    let w = common::open(&Setup::new("plain", &binaries.echo));
    let common::World {
        dir: _dir,
        root,
        sigil,
        rt,
        ..
    } = w;
    drop(sigil);
    drop(rt);
    let entry_path = root.join("home/plugins/plain/plugin");
    std::fs::remove_file(&entry_path).unwrap();
    std::fs::write(&entry_path, "not a program").unwrap();
    std::fs::set_permissions(&entry_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = sigil_runtime::Home::resolve(Some(&root.join("home"))).unwrap();
    let sandbox = sigil_sandbox::Sandbox::with_init(&binaries.sandbox_init).unwrap();
    let tier = sigil_process::ProcessTier::with_sandbox(root.join("home/run/p"), sandbox).unwrap();
    let sigil = sigil_runtime::Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Process, std::sync::Arc::new(tier))],
    )
    .unwrap();
    let entry = sigil.manager().get("plain").unwrap();
    assert_eq!(entry.lifecycle().state(), State::Error);
    let error = entry.lifecycle().error().unwrap();
    assert!(
        error.contains("is not executable") && error.contains("execution.interpreter"),
        "{error}"
    );
}

#[test]
fn the_manifest_checks_the_interpreter() {
    let manifest = |tier: &str, interpreter: &str| {
        format!(
            r#"
id = "p"
name = "P"
version = "0.1.0"
description = "d"
kinds = ["tool"]
engine = "*"

[execution]
tier = "{tier}"
entry = "main.py"
interpreter = "{interpreter}"
"#
        )
    };
    let parse = |text: &str| {
        sigil_manifest::parse_str(text, sigil_manifest::Format::Toml, "plugin.toml")
            .map(|_| ())
            .map_err(|e| {
                e.diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    };
    assert!(parse(&manifest("process", "python3")).is_ok());
    assert!(parse(&manifest("process", "/usr/bin/python3")).is_ok());
    for (tier, interpreter, problem) in [
        (
            "process",
            "bin/python3",
            "must be an absolute path or a bare program name",
        ),
        ("process", "", "is empty"),
        ("process", "/usr/../bin/sh", "must not contain `..`"),
        (
            "wasm",
            "python3",
            "applies only to the process and container tiers",
        ),
    ] {
        let error = parse(&manifest(tier, interpreter)).unwrap_err();
        assert!(
            error.contains("execution.interpreter") && error.contains(problem),
            "{tier} {interpreter}: {error}"
        );
    }
}
