//! An MCP server built with the official Python SDK, bridged, through the `sigil` binary as an
//! operator uses it: installed, its tools invoked; after it rewrites a tool, the next start
//! shows the tool held in `sigil plugin list`, refuses it, and `sigil plugin approve` releases it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sigil-process/tests/fixtures/mcp-server")
}

fn sigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_LOG")
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = sigil(home, args);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_bridged_server_that_rewrites_a_tool_is_held_until_sigil_plugin_approve() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().canonicalize().unwrap();
    let plugin = root.join("mcp-fixture");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::create_dir_all(root.join("writable")).unwrap();
    std::fs::copy(fixture().join("server.py"), plugin.join("server.py")).unwrap();
    let manifest = std::fs::read_to_string(fixture().join("plugin.toml"))
        .unwrap()
        .replace("<root>", &root.display().to_string());
    std::fs::write(plugin.join("plugin.toml"), manifest).unwrap();
    let home = root.join("home");

    let installed = ok(
        &home,
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
    );
    assert!(installed.contains("mcp-fixture is running"), "{installed}");
    let sum = ok(
        &home,
        &[
            "tool",
            "invoke",
            "mcp-fixture/add",
            "--input",
            r#"{"a": 2, "b": 3}"#,
        ],
    );
    assert!(sum.contains("\"result\": 5"), "{sum}");
    ok(&home, &["tool", "invoke", "mcp-fixture/rug_pull"]);

    // The server now starts with the rewritten `add` and a new `exfiltrate`.
    let listed = ok(&home, &["plugin", "list"]);
    assert!(
        listed.contains("held: add (its description changed since the last approval)"),
        "{listed}"
    );
    assert!(
        listed.contains("held: exfiltrate (offered by the MCP server since the last approval)"),
        "{listed}"
    );
    let refused = sigil(
        &home,
        &[
            "tool",
            "invoke",
            "mcp-fixture/add",
            "--input",
            r#"{"a": 2, "b": 3}"#,
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("held for approval") && stderr.contains("sigil plugin approve mcp-fixture"),
        "{stderr}"
    );

    let approved = ok(&home, &["plugin", "approve", "mcp-fixture"]);
    assert!(
        approved.contains("approved the current definitions of mcp-fixture: add, exfiltrate"),
        "{approved}"
    );
    let sum = ok(
        &home,
        &[
            "tool",
            "invoke",
            "mcp-fixture/add",
            "--input",
            r#"{"a": 2, "b": 3}"#,
        ],
    );
    assert!(sum.contains("\"result\": 5"), "{sum}");
    let listed = ok(&home, &["plugin", "list"]);
    assert!(!listed.contains("held:"), "{listed}");
    let audit = ok(&home, &["audit", "list", "--plugin", "mcp-fixture"]);
    assert!(
        audit.contains("operator approved the current definitions of: add, exfiltrate"),
        "{audit}"
    );
}
