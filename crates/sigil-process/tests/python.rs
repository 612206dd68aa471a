//! Python process plugins through `Runtime::invoke` on the real sandbox: the host's Python
//! runtime and the Sigil Python kit are found at load and shown to the sandbox read-only. The
//! examples work end to end, and a hostile Python plugin is contained, one test per attack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind};

use common::World;
use common::python::{open_python, repo};

// --- hello-process-python ---

fn hello() -> World {
    open_python(
        &repo().join("examples/hello-process-python"),
        "hello-process-python",
        &|m| m,
        &["kv.read:greetings".into(), "kv.write:greetings".into()],
        r#"salutation = "ahoy""#,
    )
}

#[test]
fn hello_greets_with_the_configured_salutation_and_counts_in_kv() {
    let w = hello();
    assert_eq!(
        w.ok("greet", json!({ "name": "ada" })),
        json!({ "greeting": "ahoy, ada", "times": 1 })
    );
    assert_eq!(
        w.ok("greet", json!({ "name": "ada", "excited": true })),
        json!({ "greeting": "ahoy, ada!", "times": 2 })
    );
    assert_eq!(w.ok("greet", json!({ "name": "bob" }))["times"], 1);
    assert_eq!(w.ok("forget", json!({ "name": "ada" })), json!(true));
    assert_eq!(w.ok("forget", json!({ "name": "ada" })), json!(false));
    assert_eq!(w.ok("greet", json!({ "name": "ada" }))["times"], 1);
    // The kv calls went through the enforcer.
    let allowed = w.allowed();
    assert!(
        allowed.contains(&"kv.read:greetings".to_string()),
        "{allowed:?}"
    );
    assert!(
        allowed.contains(&"kv.write:greetings".to_string()),
        "{allowed:?}"
    );
    let error = w.error_of("greet", json!({ "name": "  " }));
    assert!(error.contains("`name` is blank"), "{error}");
}

#[test]
fn hello_without_kv_consent_is_denied_and_audited() {
    let w = open_python(
        &repo().join("examples/hello-process-python"),
        "hello-process-python",
        &|m| m,
        &[],
        "",
    );
    let error = w.error_of("greet", json!({ "name": "ada" }));
    assert!(error.contains("denied"), "{error}");
    assert!(w.denials().iter().any(|d| d.starts_with("kv.")));
}

// --- pipeline-process-python ---

/// The pipeline example writing into `<root>/notes` instead of `/data/notes`, with a quota of
/// 64 bytes of which a filler file already takes 60.
fn pipeline() -> (World, PathBuf) {
    let w = open_python(
        &repo().join("examples/pipeline-process-python"),
        "pipeline-process-python",
        &|m| m.replace("/data/notes", "<root>/notes"),
        &[
            "fs.read:<root>/notes/**".into(),
            "fs.write:<root>/notes/**".into(),
        ],
        r#"directory = "<root>/notes", quota_bytes = 64"#,
    );
    let notes = w.root.join("notes");
    (w, notes)
}

fn steps(w: &World) -> String {
    w.last_outcome().0
}

#[test]
fn pipeline_writes_a_file_and_records_every_step() {
    let (w, notes) = pipeline();
    let out = w.ok("write_file", json!({ "name": "a.txt", "content": "hi" }));
    assert_eq!(out["bytes"], 2, "{out}");
    assert_eq!(std::fs::read_to_string(notes.join("a.txt")).unwrap(), "hi");
    assert_eq!(steps(&w), "validate-pre ok; invoke ok; validate-post ok");
    assert_eq!(w.last_outcome().1, "ok");
}

#[test]
fn pipeline_a_failing_execute_is_rolled_back() {
    let (w, notes) = pipeline();
    std::fs::write(notes.join("filler"), "x".repeat(60)).unwrap();
    let error = w.error_of("write_file", json!({ "name": "b.txt", "content": "hello" }));
    assert!(error.contains("over the quota of 64"), "{error}");
    assert!(error.contains("(rollback: rolled back)"), "{error}");
    let steps = steps(&w);
    assert!(
        steps.starts_with("validate-pre ok; invoke failed") && steps.ends_with("rollback ok"),
        "{steps}"
    );
    assert!(
        !notes.join("b.txt").exists(),
        "the rollback deleted the file"
    );
}

#[test]
fn pipeline_a_failing_validate_post_is_rolled_back() {
    let (w, notes) = pipeline();
    let error = w.error_of(
        "write_file",
        json!({ "name": "c.json", "content": "{nope" }),
    );
    assert!(error.contains("validate-post failed"), "{error}");
    assert!(error.contains("(rollback: rolled back)"), "{error}");
    let steps = steps(&w);
    assert!(
        steps.contains("invoke ok; validate-post failed") && steps.ends_with("rollback ok"),
        "{steps}"
    );
    assert!(
        !notes.join("c.json").exists(),
        "the rollback deleted the file"
    );
    let outcomes = w.records(Filter {
        kind: Some(RecordKind::Outcome),
        ..Filter::default()
    });
    assert!(!outcomes.is_empty());
}

// --- the hostile fixture ---

fn hostile_with(consent: &[String]) -> World {
    open_python(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python/hostile"),
        "hostile",
        &|m| {
            // One writable directory, so writing outside it can be told apart.
            format!(
                "{m}\n[[capabilities.request]]\ncapability = \"fs.write:<root>/writable/**\"\nreason = \"writes its output\"\n"
            )
        },
        &[&["fs.write:<root>/writable/**".to_string()], consent].concat(),
        "",
    )
}

fn hostile() -> World {
    hostile_with(&[])
}

/// The attack's result, which must have failed.
fn failed(w: &World, tool: &str, input: Value) -> Value {
    let out = w.ok(tool, input);
    assert_eq!(out["ok"], false, "`{tool}` got through: {out}");
    out
}

fn still_works(w: &World) {
    let out = w.ok("env", json!({}));
    assert_eq!(out["ok"], true, "{out}");
}

#[test]
fn hostile_cannot_read_etc_shadow() {
    let w = hostile();
    failed(&w, "read_file", json!({ "path": "/etc/shadow" }));
    still_works(&w);
}

#[test]
fn hostile_cannot_see_roots_home() {
    let w = hostile();
    let out = w.ok("read_file", json!({ "path": "/root" }));
    if out["ok"] == true {
        // Only the runtime's own directories can show: bubblewrap makes their parents.
        let host: Vec<String> = std::fs::read_dir("/root")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let seen: Vec<String> = out["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        let python = std::env::var("SIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
        let probe = std::process::Command::new(python)
            .args(["-m", "sigil_plugin", "sandbox-paths"])
            .output()
            .unwrap();
        let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
        for entry in &seen {
            let path = format!("/root/{entry}");
            assert!(
                probe["ro_binds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b.as_str().unwrap().starts_with(&path)),
                "/root/{entry} is visible but is no runtime bind: {out}"
            );
        }
        assert!(
            host.iter().any(|h| !seen.contains(h)),
            "the host's /root {host:?} is shown whole: {out}"
        );
    }
    failed(&w, "read_file", json!({ "path": "/root/.bashrc" }));
    still_works(&w);
}

#[test]
fn hostile_cannot_write_outside_its_grant() {
    let w = hostile();
    let inside = w.root.join("writable/ok.txt");
    let out = w.ok(
        "write_file",
        json!({ "path": inside.display().to_string() }),
    );
    assert_eq!(out["ok"], true, "the granted directory is writable: {out}");
    // A host directory that is not granted. (Its parent may exist inside the sandbox as the
    // mount point of a grant, on the sandbox's private /tmp when the tests run under /tmp: a
    // file written there stays in the sandbox. This one does not exist inside at all.)
    std::fs::create_dir_all(w.root.join("outside")).unwrap();
    let outside = w.root.join("outside/new.txt");
    failed(
        &w,
        "write_file",
        json!({ "path": outside.display().to_string() }),
    );
    assert!(!outside.exists());
    let plugin = w.root.join("home/plugins/hostile/main.py");
    failed(
        &w,
        "write_file",
        json!({ "path": plugin.display().to_string() }),
    );
    failed(&w, "write_file", json!({ "path": "/etc/sigil-hostile" }));
    assert!(!Path::new("/etc/sigil-hostile").exists());
    still_works(&w);
}

#[test]
fn hostile_direct_tcp_connect_fails() {
    let w = hostile();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    failed(
        &w,
        "tcp_connect",
        json!({ "host": "127.0.0.1", "port": port, "timeout_ms": 2000 }),
    );
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener got a connection: {accepted:?}"
    );
    still_works(&w);
}

#[test]
fn hostile_http_to_a_host_not_granted_is_denied_and_audited() {
    // Some net grant, so the sandbox has the egress proxy at all.
    let w = hostile_with(&["net.connect:127.0.0.1:1".to_string()]);
    let out = failed(
        &w,
        "http_get",
        json!({ "url": "http://blocked.example/", "timeout_ms": 5000 }),
    );
    assert!(
        out["proxies"].as_object().is_some_and(|p| !p.is_empty()),
        "the request went through the proxy: {out}"
    );
    let denials = w.denials();
    assert!(
        denials
            .iter()
            .any(|d| d.starts_with("net.connect:blocked.example")),
        "{denials:?}"
    );
    still_works(&w);
}

#[test]
fn hostile_env_holds_no_host_variables() {
    let w = hostile();
    let out = w.ok("env", json!({}));
    let env = out["env"].as_object().unwrap();
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "{out}");
    assert!(!env.contains_key("CARGO_PKG_NAME"), "{out}");
    let host_path = std::env::var("PATH").unwrap();
    assert_ne!(
        env.get("PATH").and_then(Value::as_str),
        Some(host_path.as_str())
    );
    assert_eq!(env["SIGIL_PLUGIN_ID"], "hostile");
    still_works(&w);
}

#[test]
fn hostile_fork_bomb_is_bounded() {
    let w = hostile();
    // Either a fork fails inside the process limit, or the call is ended at its deadline.
    match w.call("fork_bomb", json!({ "count": 48 })) {
        Ok(out) => {
            assert_eq!(out["ok"], false, "every fork succeeded: {out}");
            assert!(out["forked"].as_u64().unwrap() < 48, "{out}");
        }
        Err(error) => {
            let error = error.to_string();
            assert!(error.contains("deadline of 5000 ms exceeded"), "{error}");
        }
    }
    // A bomb that hit the deadline took the process with it: the next call may land while the
    // restarted interpreter is still importing grpc, so it gets a few deadlines to come back.
    let mut last = None;
    for _ in 0..3 {
        match w.call("env", json!({})) {
            Ok(out) => {
                assert_eq!(out["ok"], true, "{out}");
                return;
            }
            Err(error) => last = Some(error.to_string()),
        }
    }
    panic!("the plugin did not come back after the fork bomb: {last:?}");
}

#[test]
fn hostile_allocation_is_contained() {
    let w = hostile();
    match w.call("allocate", json!({ "mb": 1024 })) {
        Ok(out) => assert_eq!(out["ok"], false, "allocated past the limit: {out}"),
        Err(error) => {
            let error = error.to_string();
            assert!(error.contains("the plugin process"), "{error}");
        }
    }
    still_works(&w);
}

#[test]
fn hostile_garbage_on_stdout_does_not_break_calls() {
    let w = hostile();
    let out = w.ok("garbage_stdout", json!({ "megabytes": 1 }));
    assert_eq!(out["ok"], true, "{out}");
    still_works(&w);
}

#[test]
fn hostile_exiting_mid_call_fails_clearly_and_restarts() {
    let w = hostile();
    let error = w.error_of("exit_now", json!({ "code": 3 }));
    assert!(
        error.contains("the plugin process exited with status 3 during the call"),
        "{error}"
    );
    still_works(&w);
}

#[test]
fn hostile_hang_ends_at_the_deadline_and_restarts() {
    let w = hostile();
    let error = w.error_of("hang", json!({}));
    assert!(error.contains("deadline of 5000 ms exceeded"), "{error}");
    still_works(&w);
}

#[test]
fn hostile_kill_parent_reaches_nothing_outside() {
    let w = hostile();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let out = failed(&w, "kill_parent", json!({}));
    assert_eq!(out["attempted"], true, "{out}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the sleep outside was killed"
    );
    assert!(Path::new(&format!("/proc/{}", std::process::id())).exists());
    still_works(&w);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}
