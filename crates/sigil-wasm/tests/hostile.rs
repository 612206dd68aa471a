//! Hostile WebAssembly plugins, one test per attempt. Each attempt is contained (and, where the
//! host sees it, denied by the enforcer and audited), and a normal call to the same plugin
//! still succeeds afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sigil_audit::{Filter, Verdict};
use sigil_runtime::{Home, InvokeError, Runtime, State};
use sigil_wasm::WasmTier;

const SECRET: &str = "s3cr3t-Value-9f8e7d";

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sigil: Runtime,
}

/// A data directory with the hostile plugin installed. It may read `<root>/granted/**`, write
/// `<root>/writable/**`, use kv and the secret `token`.
fn world(extra_requests: &str, component: &str, limits: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let granted = root.join("granted");
    std::fs::create_dir_all(granted.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("writable")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(granted.join("note.txt"), "granted note").unwrap();
    std::fs::write(root.join("outside/secret.txt"), "outside secret").unwrap();
    std::os::unix::fs::symlink(root.join("outside/secret.txt"), granted.join("link.txt")).unwrap();
    let g = granted.display();
    let wr = root.join("writable");
    let wr = wr.display();

    let plugin_dir = root.join("home/plugins/hostile");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::copy(component, plugin_dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            r#"
id = "hostile"
name = "Hostile"
version = "0.1.0"
description = "Tries everything it should not."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [
  {{ capability = "fs.read:{g}/**", reason = "reads its data" }},
  {{ capability = "fs.write:{wr}/**", reason = "writes its output" }},
  {{ capability = "kv.*", reason = "keeps state" }},
  {{ capability = "secret.use:token", reason = "authenticates" }},
  {extra_requests}
]

[execution]
tier = "wasm"
entry = "plugin.wasm"
env = {{ PLUGIN_MODE = "test" }}

[execution.limits]
timeout_ms = 1500
memory_mib = 32
output_bytes = 4096
{limits}
"#
        ),
    )
    .unwrap();
    let consent = format!(
        r#"["fs.read:{g}/**", "fs.write:{wr}/**", "kv.*", "secret.use:token", "net.connect:127.0.0.1:*"]"#
    );
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
deny = ["kv.write:locked.*"]

[plugins.hostile]
consent = {consent}

[secrets.token]
value = "{SECRET}"
destinations = [{{ host = "api.example.invalid" }}]
"#
        ),
    )
    .unwrap();
    let home = Home::resolve(Some(&root.join("home"))).unwrap();
    let tier = WasmTier::new(root.join("home/cache/wasm")).unwrap();
    let sigil = Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Wasm, Arc::new(tier))],
    )
    .unwrap();
    World {
        _dir: dir,
        root,
        sigil,
    }
}

fn hostile() -> World {
    world("", sigil_guests::HOSTILE, "")
}

fn call(w: &World, tool: &str, input: Value) -> Result<Value, InvokeError> {
    let actor = w.sigil.local_actor(None, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(w.sigil.invoke(&actor, &format!("hostile/{tool}"), input))
        .map(|i| i.output)
}

fn error_of(result: Result<Value, InvokeError>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value}"),
        Err(error) => error.to_string(),
    }
}

fn still_works(w: &World) {
    assert_eq!(
        call(w, "echo", json!({ "ping": 1 })).unwrap(),
        json!({ "ping": 1 })
    );
}

fn denials(w: &World) -> Vec<String> {
    w.sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.record.capability.unwrap_or_default())
        .collect()
}

fn last_outcome(w: &World) -> String {
    let records = w
        .sigil
        .audit()
        .query(&Filter {
            kind: Some(sigil_audit::RecordKind::Outcome),
            ..Filter::default()
        })
        .unwrap();
    records.last().unwrap().record.outcome.clone().unwrap()
}

#[test]
fn the_plugin_loads_and_reads_inside_its_grant() {
    let w = hostile();
    let entry = w.sigil.manager().get("hostile").unwrap();
    assert_eq!(
        entry.lifecycle().state(),
        State::Running,
        "{:?}",
        entry.lifecycle().error()
    );
    let path = w.root.join("granted/note.txt");
    let out = call(&w, "read_file", json!({ "path": path })).unwrap();
    assert_eq!(out["contents"], "granted note", "{out}");
    // The preopen itself was an audited decision of this call.
    let allowed = w
        .sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Allow),
            ..Filter::default()
        })
        .unwrap();
    let granted = format!("fs.read:{}", w.root.join("granted").display());
    assert!(
        allowed
            .iter()
            .any(|r| r.record.capability.as_deref() == Some(granted.as_str()))
    );
}

#[test]
fn reading_outside_the_grant_fails() {
    let w = hostile();
    for path in [
        w.root.join("outside/secret.txt"),
        w.root.join("granted/../outside/secret.txt"),
        w.root.join("granted/link.txt"),
        PathBuf::from("/etc/passwd"),
    ] {
        let error = error_of(call(&w, "read_file", json!({ "path": path })));
        assert!(!error.contains("outside secret"), "{error}");
        assert!(
            error.contains("invoke failed"),
            "{}: {error}",
            path.display()
        );
        assert!(
            last_outcome(&w).contains("invoke failed"),
            "the failure is recorded"
        );
        still_works(&w);
    }
}

#[test]
fn writing_where_it_may_only_read_fails() {
    let w = hostile();
    let path = w.root.join("granted/new.txt");
    let error = error_of(call(&w, "write_file", json!({ "path": path, "text": "x" })));
    assert!(error.contains("invoke failed"), "{error}");
    assert!(!path.exists(), "nothing was written");
    still_works(&w);
}

/// Opens `w`'s data directory again with `deny` (`<root>` standing for its folder) added to
/// alice's denies.
fn with_user_deny(w: World, deny: &[&str]) -> World {
    let config = w.root.join("home/sigil.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let root = w.root.display().to_string();
    let added: String = deny
        .iter()
        .map(|d| format!(r#", "{}""#, d.replace("<root>", &root)))
        .collect();
    std::fs::write(
        &config,
        text.replace(
            r#"deny = ["kv.write:locked.*"]"#,
            &format!(r#"deny = ["kv.write:locked.*"{added}]"#),
        ),
    )
    .unwrap();
    let World { _dir, root, sigil } = w;
    drop(sigil);
    World {
        sigil: open(&root),
        _dir,
        root,
    }
}

fn open(root: &std::path::Path) -> Runtime {
    let home = Home::resolve(Some(&root.join("home"))).unwrap();
    let tier = WasmTier::new(root.join("home/cache/wasm")).unwrap();
    Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Wasm, Arc::new(tier))],
    )
    .unwrap()
}

/// The deny records whose rule says `needle`, as (capability, rule).
fn denials_saying(w: &World, needle: &str) -> Vec<(String, String)> {
    w.sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.record.rule.contains(needle))
        .map(|r| (r.record.capability.unwrap_or_default(), r.record.rule))
        .collect()
}

/// Replaces the directory `<root>/name` by a symbolic link to `<root>/outside`, keeping the
/// directory as `<root>/name.old`.
fn swap_for_link_outside(w: &World, name: &str) {
    std::fs::rename(w.root.join(name), w.root.join(format!("{name}.old"))).unwrap();
    std::os::unix::fs::symlink(w.root.join("outside"), w.root.join(name)).unwrap();
}

#[test]
fn a_granted_directory_swapped_for_a_link_after_load_is_refused_and_audited() {
    let w = with_user_deny(hostile(), &["fs.read:<root>/outside/**"]);
    let note = w.root.join("granted/note.txt");
    assert_eq!(
        call(&w, "read_file", json!({ "path": note })).unwrap()["contents"],
        "granted note"
    );
    swap_for_link_outside(&w, "granted");
    for path in [
        w.root.join("granted/secret.txt"),
        w.root.join("outside/secret.txt"),
    ] {
        let error = error_of(call(&w, "read_file", json!({ "path": path })));
        assert!(!error.contains("outside secret"), "{error}");
        assert!(error.contains("invoke failed"), "{error}");
    }
    let outside = w.root.join("outside").display().to_string();
    let refused = denials_saying(&w, &format!("now resolves to {outside}"));
    let granted = format!("fs.read:{}", w.root.join("granted").display());
    assert!(
        refused
            .iter()
            .any(|(capability, rule)| *capability == granted
                && rule.contains("refused, not followed")),
        "{refused:?}"
    );
    still_works(&w);
    // Put back, the held directory is the granted one again.
    std::fs::remove_file(w.root.join("granted")).unwrap();
    std::fs::rename(w.root.join("granted.old"), w.root.join("granted")).unwrap();
    assert_eq!(
        call(&w, "read_file", json!({ "path": note })).unwrap()["contents"],
        "granted note"
    );
}

#[test]
fn a_writable_directory_swapped_for_a_link_after_load_is_never_written_through() {
    let w = with_user_deny(hostile(), &["fs.write:<root>/outside/**"]);
    let fine = w.root.join("writable/fine.txt");
    call(&w, "write_file", json!({ "path": fine, "text": "fine" })).unwrap();
    assert_eq!(std::fs::read_to_string(&fine).unwrap(), "fine");
    swap_for_link_outside(&w, "writable");
    for path in [
        w.root.join("writable/planted.txt"),
        w.root.join("outside/planted.txt"),
    ] {
        let error = error_of(call(&w, "write_file", json!({ "path": path, "text": "x" })));
        assert!(error.contains("invoke failed"), "{error}");
    }
    assert!(
        !w.root.join("outside/planted.txt").exists(),
        "a file was written through the link"
    );
    let writable = format!("fs.write:{}", w.root.join("writable").display());
    let refused = denials_saying(&w, "no longer the directory held since the plugin loaded");
    assert!(
        refused
            .iter()
            .any(|(capability, _)| *capability == writable),
        "{refused:?}"
    );
    still_works(&w);
}

#[test]
fn a_deny_inside_the_granted_directory_withholds_the_whole_directory() {
    let w = with_user_deny(hostile(), &["fs.read:<root>/granted/sub/**"]);
    let error = error_of(call(
        &w,
        "read_file",
        json!({ "path": w.root.join("granted/note.txt") }),
    ));
    assert!(error.contains("invoke failed"), "{error}");
}

#[test]
fn the_host_environment_and_secret_values_never_reach_the_plugin() {
    let w = hostile();
    let out = call(&w, "env", json!({})).unwrap();
    let text = out.to_string();
    assert!(
        text.contains("PLUGIN_MODE=test"),
        "the manifest's env is there: {text}"
    );
    assert!(
        !text.contains("HOME=") && !text.contains("PATH="),
        "no host environment: {text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    let reference = call(&w, "secret", json!({ "name": "token" })).unwrap();
    assert!(
        reference.to_string().contains("sigil-secret-"),
        "{reference}"
    );
    assert!(!reference.to_string().contains(SECRET), "{reference}");
    let error = error_of(call(&w, "secret", json!({ "name": "other" })));
    assert!(error.contains("denied"), "{error}");
    assert!(denials(&w).contains(&"secret.use:other".to_string()));
}

#[test]
fn kv_is_checked_per_key_and_scoped_to_the_plugin() {
    let w = hostile();
    call(
        &w,
        "kv",
        json!({ "op": "set", "key": "visits", "value": "3" }),
    )
    .unwrap();
    let got = call(&w, "kv", json!({ "op": "get", "key": "visits" })).unwrap();
    assert!(got.to_string().contains('3'), "{got}");
    let error = error_of(call(
        &w,
        "kv",
        json!({ "op": "set", "key": "locked.door", "value": "x" }),
    ));
    assert!(error.contains("denied"), "{error}");
    assert!(denials(&w).contains(&"kv.write:locked.door".to_string()));
    still_works(&w);
}

#[test]
fn a_kv_key_that_breaks_the_capability_grammar_is_a_recorded_deny() {
    let w = hostile();
    // (op, key the plugin sends, the capability as recorded)
    let table = [
        ("get", "line\nbreak", "kv.read:line\\nbreak"),
        ("set", "carriage\rreturn", "kv.write:carriage\\rreturn"),
        ("delete", "escape\u{1b}[2J", "kv.write:escape\\u{1b}[2J"),
    ];
    for (op, key, recorded) in table {
        let before = denials(&w).len();
        let error = error_of(call(
            &w,
            "kv",
            json!({ "op": op, "key": key, "value": "x" }),
        ));
        assert!(
            error.contains("malformed capability"),
            "{op} {key:?}: {error}"
        );
        let denied = denials(&w);
        assert_eq!(denied.len(), before + 1, "{op} {key:?}: one deny record");
        assert_eq!(denied.last().map(String::as_str), Some(recorded));
    }
    let records = w
        .sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    for record in &records {
        assert!(
            record.record.rule.starts_with("malformed capability: "),
            "{}",
            record.record.rule
        );
        assert_eq!(record.record.plugin.as_deref(), Some("hostile"));
        assert!(record.record.call_id.is_some());
    }
    assert!(w.sigil.audit().verify().unwrap().is_intact());
    still_works(&w);
}

#[test]
fn spinning_forever_ends_at_the_deadline() {
    let w = hostile();
    for tool in ["spin", "spin_host"] {
        let error = error_of(call(&w, tool, json!({})));
        assert!(
            error.contains("deadline of 1500 ms exceeded"),
            "{tool}: {error}"
        );
        still_works(&w);
    }
}

#[test]
fn allocating_without_bound_hits_the_memory_limit() {
    let w = hostile();
    let error = error_of(call(&w, "alloc", json!({})));
    assert!(
        error.contains("memory limit of 32 MiB exceeded (execution.limits.memory_mib)"),
        "{error}"
    );
    assert!(last_outcome(&w).contains("memory limit"));
    still_works(&w);
}

#[test]
fn an_oversized_result_is_refused() {
    let w = hostile();
    let error = error_of(call(&w, "big_output", json!({ "bytes": 100_000 })));
    assert!(error.contains("exceeds the limit of 4096 bytes"), "{error}");
    assert!(call(&w, "big_output", json!({ "bytes": 100 })).is_ok());
    still_works(&w);
}

#[test]
fn a_trap_mid_call_ends_only_that_call() {
    let w = hostile();
    let error = error_of(call(&w, "trap", json!({})));
    assert!(error.contains("the plugin trapped"), "{error}");
    still_works(&w);
}

#[test]
fn fuel_runs_out_when_the_manifest_meters_it() {
    let w = world("", sigil_guests::HOSTILE, "fuel = 5000000");
    let error = error_of(call(&w, "spin", json!({})));
    assert!(
        error.contains("fuel limit of 5000000 exhausted (execution.limits.fuel)"),
        "{error}"
    );
    still_works(&w);
}

#[test]
fn a_component_importing_an_ungranted_interface_is_refused_at_load() {
    // The HTTP fixture imports wasi:http, but this manifest requests no net.* capability.
    let w = world("", sigil_guests::HOSTILE_HTTP, "");
    let entry = w.sigil.manager().get("hostile").unwrap();
    assert_eq!(entry.lifecycle().state(), State::Error);
    let error = entry.lifecycle().error().unwrap();
    assert!(
        error.contains("wasi:http/outgoing-handler") && error.contains("net.connect"),
        "{error}"
    );
}
