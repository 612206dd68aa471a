//! Plugin commands through the `sigil` binary: a sandboxed process plugin contributes
//! `sigil shout` and an authenticated `sigil rotate-keys`; arguments are size-limited and
//! cleaned of control characters; `require_auth` admits only a token whose user holds the
//! declared capability; refusals are recorded; Sigil's own names cannot be taken.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

const MANIFEST: &str = r#"
id = "keys"
name = "Keys"
version = "0.1.0"
description = "Contributes commands, run by a sandboxed process."
kinds = ["tool", "command"]
engine = "*"

[execution]
tier = "process"
entry = "plugin"

[execution.limits]
timeout_ms = 10000

[[commands]]
name = "shout"
description = "Echoes its arguments."
tool = "echo"

[[commands]]
name = "rotate-keys"
description = "Rotates the keys; operators only."
tool = "config"
require_auth = true
capability = "admin.keys"
"#;

const USERS: &str = r#"
[users.alice]
permissions = ["tool.*"]

[users.bob]
permissions = ["tool.*", "admin.keys"]

[users.carol]
permissions = ["tool.*", "admin.keys"]
workspaces = []
"#;

fn sigil(home: &Path, args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
    command
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_TOKEN");
    if let Some(token) = token {
        command.env("SIGIL_TOKEN", token);
    }
    command.output().unwrap()
}

fn ok(home: &Path, args: &[&str], token: Option<&str>) -> String {
    let out = sigil(home, args, token);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(home: &Path, args: &[&str], token: Option<&str>) -> String {
    let out = sigil(home, args, token);
    assert!(
        !out.status.success(),
        "sigil {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn records(home: &Path) -> Vec<Value> {
    ok(home, &["audit", "export"], None)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn plugin_dir(root: &Path, name: &str, manifest: &str) -> std::path::PathBuf {
    let fixtures = sigil_process_guests::build().unwrap();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&fixtures.echo, dir.join("plugin")).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    dir
}

#[test]
fn a_plugin_command_runs_with_cleaned_arguments_and_auth_is_enforced_and_recorded() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = root.path().join("home");
    let plugin = plugin_dir(root.path(), "keys", MANIFEST);
    ok(
        &home,
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
        None,
    );
    let config = home.join("sigil.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(USERS);
    std::fs::write(&config, text).unwrap();

    let listed = ok(&home, &["plugin", "commands"], None);
    assert!(
        listed.contains("sigil shout") && listed.contains("[keys/echo]"),
        "{listed}"
    );
    assert!(
        listed.contains("rotate-keys") && listed.contains("needs admin.keys"),
        "{listed}"
    );
    // The tool behind the authenticated command is not a tool callers can reach on its own.
    let tools = ok(&home, &["tool", "list"], None);
    assert!(
        tools.contains("keys/echo") && !tools.contains("keys/config"),
        "{tools}"
    );
    let error = fails(&home, &["tool", "invoke", "keys/config"], None);
    assert!(
        error.contains("runs only as the authenticated command `sigil rotate-keys`"),
        "{error}"
    );

    // Arguments reach the plugin's tool with every control character removed: a terminal
    // escape, a newline, a NUL-free bell.
    let out = ok(&home, &["shout", "hello", "a\x1b[31mb\nc\x07d"], None);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value, json!({ "args": ["hello", "a[31mbcd"] }));

    // Over 4 KiB in all is refused before anything runs.
    let calls_before = records(&home)
        .iter()
        .filter(|r| r["capability"] == "tool.keys.echo")
        .count();
    let long = "x".repeat(2100);
    let error = fails(&home, &["shout", &long, &long], None);
    assert!(
        error.contains("4200 bytes") && error.contains("4096"),
        "{error}"
    );
    let calls_after = records(&home)
        .iter()
        .filter(|r| r["capability"] == "tool.keys.echo")
        .count();
    assert_eq!(
        calls_before, calls_after,
        "an oversized command reached the plugin"
    );

    // require_auth: the local default user is not an authenticated one.
    let error = fails(&home, &["rotate-keys", "now"], None);
    assert!(error.contains("authenticated user"), "{error}");
    assert!(
        records(&home)
            .iter()
            .any(|r| r["capability"] == "admin.keys"
                && r["decision"] == "deny"
                && r["rule"]
                    .as_str()
                    .unwrap()
                    .contains("requires an authenticated user")),
        "the unauthenticated attempt is not recorded"
    );

    // A token proves who calls, but alice lacks the capability.
    let alice = ok(&home, &["token", "create", "--user", "alice"], None);
    let error = fails(&home, &["rotate-keys", "now"], Some(alice.trim()));
    assert!(error.contains("denied"), "{error}");
    assert!(
        records(&home)
            .iter()
            .any(|r| r["capability"] == "admin.keys"
                && r["decision"] == "deny"
                && r["actor"]["user"] == "alice"),
        "alice's refusal is not recorded"
    );

    // Carol holds the capability but belongs to no workspace: refused, and recorded.
    let carol = ok(&home, &["token", "create", "--user", "carol"], None);
    let error = fails(&home, &["rotate-keys", "now"], Some(carol.trim()));
    assert!(
        error.contains("user `carol` is not a member of workspace `default`"),
        "{error}"
    );
    assert!(
        records(&home)
            .iter()
            .any(|r| r["capability"] == "admin.keys"
                && r["decision"] == "deny"
                && r["actor"]["user"] == "carol"
                && r["rule"].as_str().unwrap().contains("not a member")),
        "carol's refusal is not recorded"
    );

    // An unknown token is refused outright.
    let error = fails(&home, &["rotate-keys", "now"], Some("not-a-token"));
    assert!(error.contains("unknown or revoked"), "{error}");

    // bob holds it: the command runs as bob, and both decisions are recorded for him.
    let bob = ok(&home, &["token", "create", "--user", "bob"], None);
    let out = ok(&home, &["rotate-keys", "now"], Some(bob.trim()));
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        value,
        json!({}),
        "the command's tool returns the plugin's configuration"
    );
    let all = records(&home);
    for capability in ["admin.keys", "tool.keys.config"] {
        assert!(
            all.iter().any(|r| r["capability"] == capability
                && r["decision"] == "allow"
                && r["actor"]["user"] == "bob"),
            "no allow of {capability} for bob"
        );
    }

    // A name no plugin contributes says which commands there are.
    let error = fails(&home, &["no-such-command"], None);
    assert!(
        error.contains("not a sigil command") && error.contains("rotate-keys, shout"),
        "{error}"
    );
    ok(&home, &["audit", "verify"], None);
}

#[test]
fn a_plugin_cannot_take_a_name_sigil_uses() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = root.path().join("home");
    for name in ["audit", "serve", "plugin", "help"] {
        let manifest = MANIFEST.replacen("name = \"shout\"", &format!("name = \"{name}\""), 1);
        let plugin = plugin_dir(root.path(), &format!("taker-{name}"), &manifest);
        let error = fails(
            &home,
            &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
            None,
        );
        assert!(
            error.contains(&format!("command name `{name}` is reserved")),
            "{name}: {error}"
        );
    }
    // Sigil's own command still answers as itself.
    let out = ok(&home, &["audit", "verify"], None);
    assert!(!out.contains("args"), "{out}");
}
