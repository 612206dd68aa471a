//! `sigil plugin config` and `sigil plugin secret` with the real binary: on the files when no
//! daemon runs, through `sigil serve` when one does; and `sigil serve` putting an edited
//! sigil.toml in force without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CONFIG: &str = r#"
[defaults]
user = "local"
workspace = "default"

[workspaces.default]
allow = ["*"]

[users.local]
permissions = ["*"]

[users.bob]
permissions = ["tool.fs.*"]

# Settings of the configured plugin.
[plugins.configured.config]
greeting = "hello"
"#;

/// A plugin with a config schema. Its component is not a real one, so it never runs; its
/// configuration is still shown, validated and changed.
const MANIFEST: &str = r#"
id = "configured"
name = "Configured"
version = "0.1.0"
description = "Has a configuration with a secret field."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "plugin.wasm"

[config.schema]
type = "object"
additionalProperties = false
required = ["greeting"]

[config.schema.properties.greeting]
type = "string"
minLength = 1

[config.schema.properties.retries]
type = "integer"

[config.schema.properties.api_key]
type = "string"
pattern = "^sk-"
secret = true
"#;

const SECRET: &str = "sk-Cl1SecretFromStdin7723";

fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("sigil.toml"), CONFIG).unwrap();
    let plugin = home.path().join("plugins/configured");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(plugin.join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(plugin.join("plugin.wasm"), b"not a component").unwrap();
    home
}

fn sigil(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_LOG")
        .env_remove("SIGIL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = sigil(home, args, stdin);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = sigil(home, args, stdin);
    assert!(!out.status.success(), "sigil {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn shown(home: &Path, token: Option<&str>) -> Value {
    let mut args = vec!["plugin", "config", "configured"];
    if let Some(token) = token {
        args.extend(["--token", token]);
    }
    serde_json::from_str(&ok(home, &args, None)).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn assert_nowhere(home: &Path, outputs: &[String]) {
    for file in ["sigil.toml", "sigil.db", "sigil.db-wal"] {
        let bytes = std::fs::read(home.join(file)).unwrap_or_default();
        assert!(!contains(&bytes, SECRET), "{file} holds the secret");
    }
    for output in outputs {
        assert!(
            !output.contains(SECRET),
            "output holds the secret: {output}"
        );
    }
}

#[test]
fn without_a_daemon_the_files_are_changed_after_validation() {
    let home = home();
    let root = home.path();
    assert_eq!(shown(root, None), json!({ "greeting": "hello" }));

    let refused = failed(
        root,
        &["plugin", "config", "configured", "--set", "greeting="],
        None,
    );
    assert!(
        refused.contains("/properties/greeting/minLength"),
        "{refused}"
    );
    let refused = failed(
        root,
        &[
            "plugin",
            "config",
            "configured",
            "--set",
            &format!("api_key={SECRET}"),
        ],
        None,
    );
    assert!(
        refused.contains("sigil plugin secret configured api_key"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("sigil.toml")).unwrap(),
        CONFIG
    );

    let mut outputs = vec![ok(
        root,
        &[
            "plugin",
            "config",
            "configured",
            "--set",
            "greeting=ahoy",
            "--set",
            "retries=3",
        ],
        None,
    )];
    let text = std::fs::read_to_string(root.join("sigil.toml")).unwrap();
    assert!(
        text.contains("# Settings of the configured plugin."),
        "{text}"
    );
    assert!(
        text.contains("greeting = \"ahoy\"") && text.contains("retries = 3"),
        "{text}"
    );

    let refused = failed(
        root,
        &["plugin", "secret", "configured", "api_key"],
        Some("pk-wrong\n"),
    );
    assert!(
        refused.contains("/properties/api_key/pattern") && !refused.contains("pk-wrong"),
        "{refused}"
    );
    let refused = failed(
        root,
        &["plugin", "secret", "configured", "greeting"],
        Some("x\n"),
    );
    assert!(refused.contains("no secret field `greeting`"), "{refused}");

    outputs.push(ok(
        root,
        &["plugin", "secret", "configured", "api_key"],
        Some(&format!("{SECRET}\n")),
    ));
    let config = shown(root, None);
    outputs.push(config.to_string());
    assert_eq!(
        config,
        json!({ "greeting": "ahoy", "retries": 3, "api_key": "<secret>" })
    );
    assert_nowhere(root, &outputs);
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("http://"), "the daemon said: {first}");
    // Read on, so the daemon's later lines never meet a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Daemon { child }
}

#[test]
fn with_a_daemon_changes_are_live_and_an_edited_file_is_put_in_force() {
    let home = home();
    let root = home.path();
    let token = ok(root, &["token", "create", "--user", "local"], None)
        .trim()
        .to_string();
    let bob = ok(root, &["token", "create", "--user", "bob"], None)
        .trim()
        .to_string();
    let _daemon = serve(root);

    let refused = failed(root, &["plugin", "config", "configured"], None);
    assert!(refused.contains("--token"), "{refused}");
    let refused = failed(
        root,
        &["plugin", "config", "configured", "--token", &bob],
        None,
    );
    assert!(
        refused.contains("HTTP 403") && refused.contains("admin.config"),
        "{refused}"
    );

    let mut outputs = vec![ok(
        root,
        &[
            "plugin",
            "config",
            "configured",
            "--set",
            "greeting=ahoy",
            "--token",
            &token,
        ],
        None,
    )];
    assert_eq!(shown(root, Some(&token)), json!({ "greeting": "ahoy" }));
    let refused = failed(
        root,
        &[
            "plugin",
            "config",
            "configured",
            "--set",
            "retries=\"x\"",
            "--token",
            &token,
        ],
        None,
    );
    assert!(
        refused.contains("HTTP 422") && refused.contains("/properties/retries/type"),
        "{refused}"
    );

    outputs.push(ok(
        root,
        &[
            "plugin",
            "secret",
            "configured",
            "api_key",
            "--token",
            &token,
        ],
        Some(SECRET),
    ));
    let config = shown(root, Some(&token));
    outputs.push(config.to_string());
    assert_eq!(config, json!({ "greeting": "ahoy", "api_key": "<secret>" }));

    // An edit on disk reaches the daemon without a restart; a broken one does not.
    let text = std::fs::read_to_string(root.join("sigil.toml")).unwrap();
    std::fs::write(
        root.join("sigil.toml"),
        text.replace("\"ahoy\"", "\"edited\""),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while shown(root, Some(&token))["greeting"] != "edited" {
        assert!(
            Instant::now() < deadline,
            "the edit never reached the daemon"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(root.join("sigil.toml"), text.replace("\"ahoy\"", "\"\"")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        shown(root, Some(&token)),
        json!({ "greeting": "edited", "api_key": "<secret>" })
    );
    outputs.push(ok(root, &["audit", "export"], None));
    assert!(
        outputs
            .last()
            .unwrap()
            .contains("configuration change rejected")
    );
    assert_nowhere(root, &outputs);
}
