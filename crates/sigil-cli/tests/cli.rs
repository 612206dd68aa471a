//! The `sigil` binary, run as a user would, on a fresh data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

struct Sigil {
    home: tempfile::TempDir,
}

impl Sigil {
    fn new() -> Sigil {
        Sigil {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(args)
            .env("SIGIL_HOME", self.home.path())
            .env_remove("SIGIL_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sigil {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "sigil {args:?} should exit 1: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

#[test]
fn a_tool_call_runs_end_to_end_on_a_fresh_home() {
    let sigil = Sigil::new();
    let listing = sigil.ok(&["tool", "list"]);
    assert!(
        listing.contains("text/sha256") && listing.contains("fs/read_text"),
        "{listing}"
    );
    let out = sigil.ok(&[
        "tool",
        "invoke",
        "text/sha256",
        "--input",
        r#"{"text":"hello"}"#,
    ]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        value["sha256"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert!(
        sigil.home.path().join("sigil.toml").exists()
            && sigil.home.path().join("sigil.db").exists()
    );

    let (_, err) = sigil.fails(&["tool", "invoke", "text/sha256", "--input", r#"{"txt":"x"}"#]);
    assert!(
        err.contains("invalid arguments for `text/sha256`")
            && err.contains("\"text\" is a required property"),
        "{err}"
    );
    let (_, err) = sigil.fails(&["tool", "invoke", "text/sha256", "--input", "{not json"]);
    assert!(err.contains("--input is not valid JSON"), "{err}");
    let (_, err) = sigil.fails(&["tool", "invoke", "sha256", "--input", "{}"]);
    assert!(err.contains("write it as PLUGIN/TOOL"), "{err}");
    let (_, err) = sigil.fails(&[
        "tool",
        "invoke",
        "text/sha256",
        "--user",
        "ghost",
        "--input",
        r#"{"text":"x"}"#,
    ]);
    assert!(
        err.contains("denied: user `ghost` is not configured in sigil.toml"),
        "{err}"
    );

    let records = sigil.ok(&["audit", "list", "--json"]);
    let lines: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{records}");
    let denies = sigil.ok(&[
        "audit",
        "list",
        "--json",
        "--decision",
        "deny",
        "--user",
        "ghost",
    ]);
    assert_eq!(denies.lines().count(), 1, "{denies}");
    assert!(
        sigil
            .ok(&["audit", "verify"])
            .starts_with("ok: 5 record(s), hash chain intact")
    );
}

#[test]
fn lint_reports_every_problem_with_its_location() {
    let sigil = Sigil::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "id = \"Bad Id\"\nname = \"x\"\nversion = \"1.0\"\ndescription = \"d\"\nkinds = [\"tool\"]\nengine = \"*\"\ncolour = \"blue\"\n\n[execution]\ntier = \"wasm\"\n",
    )
    .unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let (_, err) = sigil.fails(&["plugin", "lint", dir_arg]);
    let file = dir.path().join("plugin.toml");
    let file = file.display();
    for expected in [
        format!("{file}:1:6:"),
        format!("{file}:3:11:"),
        format!("{file}:7:1:"),
        "problem(s) found".to_string(),
    ] {
        assert!(err.contains(&expected), "missing {expected} in:\n{err}");
    }
    assert!(err.contains("colour"), "{err}");
    let (json, _) = sigil.fails(&["plugin", "lint", dir_arg, "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        value["diagnostics"].as_array().unwrap().len() >= 4,
        "{value}"
    );

    std::fs::write(
        dir.path().join("plugin.toml"),
        include_str!("../../sigil-builtins/src/text/plugin.toml"),
    )
    .unwrap();
    assert!(
        sigil
            .ok(&["plugin", "lint", dir_arg])
            .contains(": ok (text 0.1.0)")
    );
    // Command names the CLI uses itself are reserved, derived from its own definition.
    let manifest = include_str!("../../sigil-builtins/src/text/plugin.toml")
        .replace("kinds = [\"tool\"]", "kinds = [\"tool\", \"command\"]");
    for reserved in ["audit", "policy", "manifest", "help"] {
        let text =
            format!("{manifest}\n[[commands]]\nname = \"{reserved}\"\ndescription = \"d\"\n");
        std::fs::write(dir.path().join("plugin.toml"), text).unwrap();
        let (_, err) = sigil.fails(&["plugin", "lint", dir_arg]);
        assert!(
            err.contains(&format!("command name `{reserved}` is reserved by sigil")),
            "{err}"
        );
    }
    let text = format!("{manifest}\n[[commands]]\nname = \"weather\"\ndescription = \"d\"\n");
    std::fs::write(dir.path().join("plugin.toml"), text).unwrap();
    sigil.ok(&["plugin", "lint", dir_arg]);
    let (_, err) = sigil.fails(&["plugin", "lint", "/nonexistent-dir"]);
    assert!(err.contains("/nonexistent-dir"), "{err}");
}

#[test]
fn the_manifest_schema_is_printed_as_json_schema() {
    let out = Sigil::new().ok(&["manifest", "schema"]);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        schema["$schema"].as_str().unwrap().contains("2020-12"),
        "{}",
        schema["$schema"]
    );
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["capabilities"].is_object());
}

#[test]
fn policy_explain_names_the_deciding_rule() {
    let sigil = Sigil::new();
    let out = sigil.ok(&["policy", "explain", "fs.read:/srv/data/x", "--plugin", "fs"]);
    assert!(
        out.starts_with(
            "allow  fs.read:/srv/data/x  (plugin `fs` for user `local` in workspace `default`)"
        ),
        "{out}"
    );
    assert!(
        out.contains("rule:  plugin `fs` requests `fs.read`"),
        "{out}"
    );
    let (out, _) = sigil.fails(&["policy", "explain", "fs.write:/tmp/x", "--plugin", "fs"]);
    assert!(
        out.contains("rule:  plugin `fs`'s manifest denies `fs.write`"),
        "{out}"
    );
    let (out, _) = sigil.fails(&["policy", "explain", "kv.read", "--plugin", "text"]);
    assert!(out.contains("plugin `text` did not request it"), "{out}");
    let (out, _) = sigil.fails(&[
        "policy",
        "explain",
        "kv.read",
        "--plugin",
        "nope",
        "--workspace",
        "default",
    ]);
    assert!(out.contains("plugin `nope` is not registered"), "{out}");
    let (_, err) = sigil.fails(&["policy", "explain", "fs.read:relative", "--plugin", "fs"]);
    assert!(err.contains("must be absolute"), "{err}");
    // explain is a question, not a decision: nothing is recorded.
    assert_eq!(sigil.ok(&["audit", "list"]).trim(), "no records match");
}

#[test]
fn plugin_list_and_inspect_show_state_and_capabilities() {
    let sigil = Sigil::new();
    let broken = sigil.home.path().join("plugins/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("plugin.yaml"), "id: broken\nversion: [\n").unwrap();
    let list = sigil.ok(&["plugin", "list"]);
    assert!(
        list.contains("fs") && list.contains("running") && list.contains("builtin"),
        "{list}"
    );
    assert!(
        list.contains("invalid") && list.contains("plugin.yaml:"),
        "{list}"
    );
    let inspect = sigil.ok(&["plugin", "inspect", "fs"]);
    assert!(inspect.contains("fs.read  — reads the files"), "{inspect}");
    assert!(inspect.contains("denies itself fs.write"), "{inspect}");
    assert!(inspect.contains("read_text"), "{inspect}");
    let json: serde_json::Value =
        serde_json::from_str(&sigil.ok(&["plugin", "inspect", "text", "--json"])).unwrap();
    assert_eq!(json["summary"]["state"], "running");
    assert_eq!(json["tools"].as_array().unwrap().len(), 2);
    let (_, err) = sigil.fails(&["plugin", "inspect", "nope"]);
    assert!(
        err.contains("no plugin `nope`; installed: fs, text"),
        "{err}"
    );
}

#[test]
fn audit_verify_names_a_tampered_record_and_export_writes_json_lines() {
    let sigil = Sigil::new();
    for text in ["a", "b", "c"] {
        sigil.ok(&[
            "tool",
            "invoke",
            "text/stats",
            "--input",
            &format!(r#"{{"text":"{text}"}}"#),
        ]);
    }
    let export = sigil.home.path().join("export.jsonl");
    let out = sigil.run(&["audit", "export", "--output", export.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 6 record(s)"));
    let exported = std::fs::read_to_string(&export).unwrap();
    let seqs: Vec<u64> = exported
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    let db = rusqlite::Connection::open(Path::new(sigil.home.path()).join("sigil.db")).unwrap();
    db.execute(
        "UPDATE audit_records SET rule = 'nothing to see' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let (out, _) = sigil.fails(&["audit", "verify"]);
    assert!(out.starts_with("TAMPERED: record 3 "), "{out}");
}

/// The documented canonical JSON of stored record `seq`, built from the raw columns.
fn canonical(db: &rusqlite::Connection, seq: i64) -> String {
    db.query_row(
        "SELECT time_ms, kind, actor_user, actor_workspace, actor_session, actor_channel, \
         plugin, plugin_version, capability, decision, rule, call_id, duration_us, outcome, \
         steps FROM audit_records WHERE seq = ?1",
        [seq],
        |row| {
            let text = |i: usize| -> rusqlite::Result<String> {
                Ok(row
                    .get::<_, Option<String>>(i)?
                    .map_or("null".to_string(), |s| {
                        serde_json::Value::String(s).to_string()
                    }))
            };
            let duration: Option<i64> = row.get(12)?;
            // The steps, stored as their compact JSON, follow only when there are any.
            let steps = row
                .get::<_, Option<String>>(14)?
                .map_or(String::new(), |steps| format!(",\"steps\":{steps}"));
            Ok(format!(
                "{{\"v\":1,\"time_ms\":{},\"kind\":{},\"user\":{},\"workspace\":{},\"session\":{},\
                 \"channel\":{},\"plugin\":{},\"plugin_version\":{},\"capability\":{},\
                 \"decision\":{},\"rule\":{},\"call_id\":{},\"duration_us\":{},\"outcome\":{}{}}}",
                row.get::<_, i64>(0)?,
                text(1)?,
                text(2)?,
                text(3)?,
                text(4)?,
                text(5)?,
                text(6)?,
                text(7)?,
                text(8)?,
                text(9)?,
                text(10)?,
                text(11)?,
                duration.map_or("null".to_string(), |d| d.to_string()),
                text(13)?,
                steps,
            ))
        },
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the attacker makes a chain value from (prev_hash, canonical JSON).
type ChainRule<'a> = &'a dyn Fn(&str, &str) -> String;

/// How the attacker makes the head's MAC from (seq, chain value), when it can.
type HeadRule<'a> = Option<&'a dyn Fn(i64, &str) -> String>;

/// Recomputes every chain value from record `from` on and the head.
fn rechain(db: &rusqlite::Connection, from: i64, mac: ChainRule<'_>, head_mac: HeadRule<'_>) {
    let mut prev: String = db
        .query_row(
            "SELECT prev_hash FROM audit_records WHERE seq = ?1",
            [from],
            |row| row.get(0),
        )
        .unwrap();
    let last: i64 = db
        .query_row("SELECT MAX(seq) FROM audit_records", [], |row| row.get(0))
        .unwrap();
    for seq in from..=last {
        let value = mac(&prev, &canonical(db, seq));
        db.execute(
            "UPDATE audit_records SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, value, seq],
        )
        .unwrap();
        prev = value;
    }
    db.execute(
        "UPDATE audit_head SET seq = ?1, hash = ?2",
        rusqlite::params![last, prev],
    )
    .unwrap();
    if let Some(head_mac) = head_mac {
        db.execute(
            "UPDATE audit_head SET mac = ?1",
            rusqlite::params![head_mac(last, &prev)],
        )
        .unwrap();
    }
}

/// A few allowed calls around one denied call; returns the deny's record number.
fn calls_with_one_deny(sigil: &Sigil) -> i64 {
    for text in ["a", "b"] {
        sigil.ok(&[
            "tool",
            "invoke",
            "text/stats",
            "--input",
            &format!(r#"{{"text":"{text}"}}"#),
        ]);
    }
    sigil.fails(&[
        "tool",
        "invoke",
        "text/sha256",
        "--user",
        "ghost",
        "--input",
        r#"{"text":"x"}"#,
    ]);
    sigil.ok(&["tool", "invoke", "text/stats", "--input", r#"{"text":"c"}"#]);
    let db = rusqlite::Connection::open(sigil.home.path().join("sigil.db")).unwrap();
    db.query_row(
        "SELECT seq FROM audit_records WHERE decision = 'deny'",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

fn flip_to_allow(db: &rusqlite::Connection, seq: i64) {
    let changed = db
        .execute(
            "UPDATE audit_records SET decision = 'allow', rule = 'granted' WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[test]
fn audit_verify_finds_a_deny_turned_into_an_allow_with_every_hash_recomputed() {
    let sigil = Sigil::new();
    let denied = calls_with_one_deny(&sigil);
    assert!(sigil.ok(&["audit", "verify"]).starts_with("ok: "));

    // The attacker holds sigil.db, not state/audit.key: it recomputes the chain by the
    // documented unkeyed rule, head included.
    let db = rusqlite::Connection::open(sigil.home.path().join("sigil.db")).unwrap();
    flip_to_allow(&db, denied);
    let sha256 = |prev: &str, canonical: &str| {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(canonical.as_bytes());
        hex(&hasher.finalize())
    };
    rechain(&db, denied, &sha256, None);
    drop(db);
    assert!(
        sigil
            .ok(&["audit", "list", "--decision", "deny"])
            .contains("no records match")
    );

    let (out, _) = sigil.fails(&["audit", "verify"]);
    assert!(
        out.starts_with(&format!(
            "TAMPERED: record {denied} was edited: its content does not match its hash"
        )),
        "{out}"
    );
    let (out, _) = sigil.fails(&["doctor"]);
    assert!(
        out.contains(&format!("record {denied} was edited")),
        "{out}"
    );
}

#[test]
fn an_exported_checkpoint_proves_an_edit_by_someone_holding_the_chain_key() {
    use hmac::Mac;
    let sigil = Sigil::new();
    let denied = calls_with_one_deny(&sigil);
    let kept = sigil.home.path().join("kept-elsewhere.json");
    let out = sigil.run(&["audit", "checkpoint", "export", kept.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    let at = exported["seq"].as_i64().unwrap();
    assert!(at > denied, "{exported}");
    assert_eq!(exported["format"], "sigil-audit-checkpoint/1");
    assert!(exported["public_key"].as_str().unwrap().starts_with("RW"));
    assert!(
        sigil
            .ok(&["audit", "verify", "--checkpoint", kept.to_str().unwrap()])
            .contains(&format!("matches the checkpoint at record {at}"))
    );
    // minisign itself checks it, without Sigil.
    let statement = sigil.home.path().join("statement");
    let signature = sigil.home.path().join("statement.minisig");
    std::fs::write(&statement, exported["statement"].as_str().unwrap()).unwrap();
    std::fs::write(&signature, exported["signature"].as_str().unwrap()).unwrap();
    let minisign = Command::new("minisign")
        .args([
            "-V",
            "-q",
            "-P",
            exported["public_key"].as_str().unwrap(),
            "-m",
        ])
        .arg(&statement)
        .arg("-x")
        .arg(&signature)
        .output()
        .expect("minisign is installed (scripts/install-*)");
    assert!(
        minisign.status.success(),
        "{}",
        String::from_utf8_lossy(&minisign.stderr)
    );

    // The attacker holds sigil.db and state/audit.key, not the checkpoint key.
    let key = std::fs::read(sigil.home.path().join("state/audit.key")).unwrap();
    let keyed = |parts: &[&[u8]]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        for part in parts {
            mac.update(part);
        }
        hex(&mac.finalize().into_bytes())
    };
    let db = rusqlite::Connection::open(sigil.home.path().join("sigil.db")).unwrap();
    flip_to_allow(&db, denied);
    rechain(
        &db,
        denied,
        &|prev, canonical| keyed(&[prev.as_bytes(), canonical.as_bytes()]),
        Some(&|seq, hash| keyed(&[format!("sigil-audit head\n{seq}\n{hash}").as_bytes()])),
    );
    db.execute("DELETE FROM audit_checkpoints", []).unwrap();
    drop(db);

    // The log alone verifies: its key was used.
    assert!(sigil.ok(&["audit", "verify"]).starts_with("ok: "));
    let (out, _) = sigil.fails(&["audit", "verify", "--checkpoint", kept.to_str().unwrap()]);
    assert!(
        out.starts_with(&format!(
            "TAMPERED: records 1..{at} were rewritten after the checkpoint at record {at} was signed"
        )),
        "{out}"
    );

    // A checkpoint edited to match the rewritten log is refused.
    let forged = sigil.home.path().join("forged.json");
    let head: String = rusqlite::Connection::open(sigil.home.path().join("sigil.db"))
        .unwrap()
        .query_row(
            "SELECT hash FROM audit_records WHERE seq = ?1",
            [at],
            |row| row.get(0),
        )
        .unwrap();
    let original = exported["head"].as_str().unwrap();
    std::fs::write(
        &forged,
        std::fs::read_to_string(&kept)
            .unwrap()
            .replace(original, &head),
    )
    .unwrap();
    let (_, err) = sigil.fails(&["audit", "verify", "--checkpoint", forged.to_str().unwrap()]);
    assert!(err.contains("checkpoint refused"), "{err}");
    assert!(err.contains("does not verify"), "{err}");
}

/// The whole path a Python plugin author takes: scaffold, test natively, build with
/// componentize-py, install with consent, call through the enforcer.
#[test]
fn a_fresh_python_plugin_builds_installs_and_runs() {
    let sigil = Sigil::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_str().unwrap();
    sigil.ok(&["plugin", "new", "greeter", "--lang", "python", "--dir", dir]);
    let plugin = work.path().join("greeter");
    for file in [
        "plugin.toml",
        "app.py",
        "test_app.py",
        "wit/tool.wit",
        "wit/deps/http/http.wit",
    ] {
        assert!(plugin.join(file).is_file(), "{file} scaffolded");
    }
    // Its own test passes out of the box, natively, with the kit compiled into sigil.
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python/src");
    let pytest = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&plugin)
        .env("PYTHONPATH", &kit)
        .output()
        .unwrap();
    assert!(
        pytest.status.success(),
        "{}{}",
        String::from_utf8_lossy(&pytest.stdout),
        String::from_utf8_lossy(&pytest.stderr)
    );

    let (_, err) = sigil.fails(&["plugin", "install", plugin.to_str().unwrap(), "--yes"]);
    assert!(
        err.contains("build the plugin first with `sigil plugin build"),
        "{err}"
    );
    let built = sigil.ok(&["plugin", "build", plugin.to_str().unwrap()]);
    assert!(
        built.contains("built ") && plugin.join("plugin.wasm").is_file(),
        "{built}"
    );
    let installed = sigil.ok(&["plugin", "install", plugin.to_str().unwrap(), "--yes"]);
    assert!(
        installed.contains("greeter is running; tools: greet"),
        "{installed}"
    );
    let config = std::fs::read_to_string(sigil.home.path().join("sigil.toml")).unwrap();
    assert!(
        config.contains("[plugins.greeter]") && config.contains("# Sigil configuration"),
        "consent recorded, comments kept:\n{config}"
    );

    let out = sigil.ok(&[
        "tool",
        "invoke",
        "greeter/greet",
        "--input",
        r#"{"name":"ada","excited":true}"#,
    ]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["greeting"], "hello, ada!");
    let (_, err) = sigil.fails(&[
        "tool",
        "invoke",
        "greeter/greet",
        "--input",
        r#"{"name":7}"#,
    ]);
    assert!(err.contains("invalid arguments"), "{err}");
    let (_, err) = sigil.fails(&["plugin", "install", plugin.to_str().unwrap(), "--yes"]);
    assert!(
        err.contains("already installed") && err.contains("--force"),
        "{err}"
    );
}

#[test]
fn install_refuses_invalid_plugins_and_links() {
    let sigil = Sigil::new();
    let work = tempfile::tempdir().unwrap();
    let (_, err) = sigil.fails(&["plugin", "install", work.path().to_str().unwrap(), "--yes"]);
    assert!(err.contains("nothing was installed"), "{err}");
    let plugin = work.path().join("p");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        "id = \"p\"\nname = \"p\"\nversion = \"0.1.0\"\ndescription = \"d\"\nkinds = [\"tool\"]\nengine = \"*\"\n\n[execution]\ntier = \"wasm\"\nentry = \"plugin.wasm\"\n",
    )
    .unwrap();
    std::fs::write(plugin.join("plugin.wasm"), b"not wasm").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", plugin.join("passwd")).unwrap();
    let (_, err) = sigil.fails(&["plugin", "install", plugin.to_str().unwrap(), "--yes"]);
    assert!(
        err.contains("is a symbolic link; plugins may not contain links"),
        "{err}"
    );
    assert!(
        !sigil.home.path().join("plugins/p").exists(),
        "nothing half-installed"
    );
    std::fs::remove_file(plugin.join("passwd")).unwrap();
    let (_, err) = sigil.fails(&["plugin", "install", plugin.to_str().unwrap(), "--yes"]);
    assert!(
        err.contains("did not load") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn a_plugin_disabled_from_the_command_line_stays_stopped_until_enabled() {
    let sigil = Sigil::new();
    let out = sigil.ok(&["plugin", "disable", "text"]);
    assert!(out.starts_with("text is stopped"), "{out}");
    assert!(sigil.home.path().join("state/disabled.json").exists());

    // Every command below is a new process opening the data directory: a restart each time.
    let listing = sigil.ok(&["plugin", "list"]);
    let row = |id: &str| {
        listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no {id} in {listing}"))
            .to_string()
    };
    assert!(row("text").contains(" stopped "), "{listing}");
    assert!(row("fs").contains(" running "), "{listing}");
    assert!(
        listing.contains("    disabled: `sigil plugin enable text` serves it again"),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&sigil.ok(&["plugin", "list", "--json"])).unwrap();
    let plugin = |id: &str| {
        json["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            plugin("text")["state"].as_str(),
            plugin("text")["disabled"].as_bool()
        ),
        (Some("stopped"), Some(true))
    );
    assert_eq!(
        (
            plugin("fs")["state"].as_str(),
            plugin("fs")["disabled"].as_bool()
        ),
        (Some("running"), Some(false))
    );
    let inspect = sigil.ok(&["plugin", "inspect", "text"]);
    assert!(inspect.contains("state stopped (disabled)"), "{inspect}");

    let (_, err) = sigil.fails(&[
        "tool",
        "invoke",
        "text/sha256",
        "--input",
        r#"{"text":"hello"}"#,
    ]);
    assert!(err.contains("plugin `text` is stopped"), "{err}");
    let tools = sigil.ok(&["tool", "list"]);
    assert!(
        !tools.contains("text/sha256") && tools.contains("fs/read_text"),
        "{tools}"
    );
    let (_, err) = sigil.fails(&["plugin", "disable", "text"]);
    assert!(
        err.contains("plugin `text` is stopped: only a running plugin can be disabled"),
        "{err}"
    );
    let (_, err) = sigil.fails(&["plugin", "disable", "nope"]);
    assert!(err.contains("no plugin `nope`"), "{err}");

    let out = sigil.ok(&["plugin", "enable", "text"]);
    assert_eq!(out.trim(), "text is running");
    let listing = sigil.ok(&["plugin", "list"]);
    assert!(!listing.contains("disabled:"), "{listing}");
    let out = sigil.ok(&[
        "tool",
        "invoke",
        "text/sha256",
        "--input",
        r#"{"text":"hello"}"#,
    ]);
    assert!(
        out.contains("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        "{out}"
    );
    let (_, err) = sigil.fails(&["plugin", "enable", "text"]);
    assert!(
        err.contains("only a stopped plugin can be enabled"),
        "{err}"
    );
}

#[test]
fn a_corrupt_disabled_state_file_is_named_in_a_warning_and_ignored() {
    let sigil = Sigil::new();
    let file = sigil.home.path().join("state").join("disabled.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{\"disabled\": [\"text\"").unwrap();

    let out = sigil.run(&["plugin", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let warning = String::from_utf8(out.stderr).unwrap();
    assert!(
        warning.contains(&file.display().to_string()) && warning.contains("corrupt"),
        "{warning}"
    );
    let text = listing.lines().find(|l| l.starts_with("text ")).unwrap();
    assert!(text.contains(" running "), "{listing}");

    // The next change writes the file afresh.
    sigil.ok(&["plugin", "disable", "text"]);
    let out = sigil.run(&["plugin", "list"]);
    let warning = String::from_utf8(out.stderr).unwrap();
    assert!(!warning.contains("disabled.json"), "{warning}");
    let rewritten: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(rewritten, serde_json::json!({ "disabled": ["text"] }));
}

#[test]
fn the_local_user_acts_only_in_the_workspaces_it_belongs_to() {
    let sigil = Sigil::new();
    sigil.ok(&["status"]);
    let config = sigil.home.path().join("sigil.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[workspaces.lab]\nallow = [\"*\"]\n"),
    )
    .unwrap();
    let sha = |workspace: &str| {
        sigil.run(&[
            "tool",
            "invoke",
            "text/sha256",
            "--input",
            r#"{"text":"hello"}"#,
            "--workspace",
            workspace,
        ])
    };
    // `local` has no `workspaces` field: it belongs to `[defaults] workspace` alone.
    let refused = sha("lab");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("user `local` is not a member of workspace `lab`"),
        "{err}"
    );
    let (_, err) = sigil.fails(&["mcp", "--workspace", "lab"]);
    assert!(
        err.contains("cannot serve mcp: user `local` is not a member of workspace `lab`"),
        "{err}"
    );
    let (out, _) = sigil.fails(&[
        "policy",
        "explain",
        "tool.text.sha256",
        "--plugin",
        "text",
        "--workspace",
        "lab",
    ]);
    assert!(out.contains("not a member of workspace `lab`"), "{out}");
    let denies: Vec<serde_json::Value> = sigil
        .ok(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["decision"] == "deny")
        .collect();
    assert_eq!(denies.len(), 2, "the call and the mcp server: {denies:?}");
    assert!(denies.iter().all(|r| r["actor"]["workspace"] == "lab"
        && r["rule"].as_str().unwrap().contains("not a member")));

    // A member of `lab`, the same call runs there.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[users.local]\npermissions = [\"*\"]\n",
        "[users.local]\npermissions = [\"*\"]\nworkspaces = [\"default\", \"lab\"]\n",
        1,
    );
    assert!(
        text.contains("workspaces = [\"default\", \"lab\"]"),
        "{text}"
    );
    std::fs::write(&config, text).unwrap();
    assert!(sha("lab").status.success());
}
