//! A hook plugin through the `sigil` binary: installed beside the tool it watches, shown by
//! `sigil plugin inspect`, and vetoing a `sigil tool invoke`, with the veto in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const ECHO: &str = r#"
id = "echo"
name = "Echo"
version = "0.1.0"
description = "Echoes its input from a sandboxed process."
kinds = ["tool"]
engine = "*"

[execution]
tier = "process"
entry = "plugin"
"#;

const GUARD: &str = r#"
id = "guard"
name = "Guard"
version = "0.2.0"
description = "Vetoes calls whose input names it."
kinds = ["hook"]
engine = "*"

[execution]
tier = "process"
entry = "plugin"
env = { HOOK_NAME = "guard" }

[[hooks]]
event = "before_tool_execute"
priority = 3
timeout_ms = 4000
"#;

fn sigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = sigil(home, args);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_hook_plugin_is_inspected_and_vetoes_a_call_from_the_command_line() {
    let fixtures = sigil_process_guests::build().unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = dir.path().join("home");
    for (id, binary, manifest) in [
        ("echo", &fixtures.echo, ECHO),
        ("guard", &fixtures.hook, GUARD),
    ] {
        let plugin = dir.path().join(id);
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::copy(binary, plugin.join("plugin")).unwrap();
        std::fs::write(plugin.join("plugin.toml"), manifest).unwrap();
        ok(
            &home,
            &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
        );
    }

    let inspected = ok(&home, &["plugin", "inspect", "guard"]);
    assert!(
        inspected.contains("before_tool_execute  priority 3, timeout 4000 ms"),
        "{inspected}"
    );

    let allowed = ok(
        &home,
        &[
            "tool",
            "invoke",
            "echo/echo",
            "--input",
            r#"{"said": "hi"}"#,
        ],
    );
    let value: serde_json::Value = serde_json::from_str(&allowed).unwrap();
    assert_eq!(value, serde_json::json!({ "said": "hi" }));

    let vetoed = sigil(
        &home,
        &[
            "tool",
            "invoke",
            "echo/echo",
            "--input",
            r#"{"deny": "guard"}"#,
        ],
    );
    assert!(!vetoed.status.success());
    let stderr = String::from_utf8_lossy(&vetoed.stderr);
    assert!(
        stderr.contains(r#"hook `guard` stopped the call: guard refuses "echo""#),
        "{stderr}"
    );

    let audit = ok(&home, &["audit", "export"]);
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hook_rules: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["capability"] == "hook.before_tool_execute")
        .map(|r| {
            (
                r["decision"].as_str().unwrap_or_default(),
                r["rule"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        hook_rules,
        [
            ("allow", "hook guard: allow"),
            ("deny", r#"hook guard: deny: guard refuses "echo""#)
        ]
    );
    ok(&home, &["audit", "verify"]);
}
