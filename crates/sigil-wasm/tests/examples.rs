//! The C examples in `examples/`, installed with their own manifests and called through the
//! runtime as an operator would: the pure tool, and the HTTP tool against a real loopback
//! server that checks the injected secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use sigil_audit::{Filter, Verdict};
use sigil_runtime::{Home, Runtime, State};
use sigil_wasm::WasmTier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "example-token-5c1e";

/// Copies an example's manifest and its built component into the data directory.
fn install(root: &Path, example: &str, wasm: &str) {
    let dir = root.join("plugins").join(example);
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    std::fs::copy(
        repo.join(example).join("plugin.toml"),
        dir.join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(wasm, dir.join("plugin.wasm")).unwrap();
}

/// The operator, allowed everything; `extra` adds plugin consent, config and secrets.
const OPERATOR: &str = r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]
"#;

fn open(root: &Path, extra: &str) -> Runtime {
    std::fs::write(root.join("sigil.toml"), format!("{OPERATOR}{extra}")).unwrap();
    let tier = WasmTier::new(root.join("cache/wasm")).unwrap();
    Runtime::open_with(
        Home::resolve(Some(root)).unwrap(),
        Vec::new(),
        vec![(sigil_manifest::Tier::Wasm, Arc::new(tier))],
    )
    .unwrap()
}

fn running(sigil: &Runtime, id: &str) {
    let entry = sigil.manager().get(id).unwrap();
    assert_eq!(
        entry.lifecycle().state(),
        State::Running,
        "{id}: {:?}",
        entry.lifecycle().error()
    );
}

#[test]
fn hello_c_greets_and_its_output_is_checked_against_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hello-c", sigil_guests::EXAMPLE_HELLO_C);
    let sigil = open(dir.path(), "");
    running(&sigil, "hello-c");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let actor = sigil.local_actor(None, None);
    let out = rt
        .block_on(sigil.invoke(&actor, "hello-c/greet", json!({ "name": "Ada" })))
        .unwrap();
    assert_eq!(out.output, json!({ "greeting": "hello, Ada" }));
    let wrong = rt
        .block_on(sigil.invoke(&actor, "hello-c/greet", json!({ "name": 7 })))
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("name"), "{wrong}");
}

/// Answers one request on loopback with `pong`, sending its head to the test.
async fn server() -> (u16, mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong")
            .await;
    });
    (port, rx)
}

#[test]
fn http_c_fetches_with_the_token_injected_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (port, heads) = rt.block_on(server());
    install(dir.path(), "http-c", sigil_guests::EXAMPLE_HTTP_C);
    let sigil = open(
        dir.path(),
        &format!(
            r#"
[plugins.http-c]
consent = ["net.connect:127.0.0.1:*", "secret.use:api_token"]
config = {{ base_url = "http://127.0.0.1:{port}" }}

[secrets.api_token]
value = "{TOKEN}"
destinations = [{{ host = "127.0.0.1", header = "authorization", path = "/status" }}]
"#
        ),
    );
    running(&sigil, "http-c");
    let actor = sigil.local_actor(None, None);
    let out = rt
        .block_on(sigil.invoke(&actor, "http-c/fetch", json!({ "path": "/status" })))
        .unwrap()
        .output;
    assert!(out.to_string().contains("pong"), "{out}");
    assert!(!out.to_string().contains(TOKEN), "the plugin's view: {out}");
    let head = heads.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("GET /status HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("authorization: bearer {TOKEN}")),
        "{head}"
    );
    let records = sigil.audit().query(&Filter::default()).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.record.decision == Some(Verdict::Allow)
                && r.record.capability.as_deref()
                    == Some(&format!("net.connect:127.0.0.1:{port}"))),
        "the connection was decided and recorded"
    );
    assert!(!serde_json::to_string(&records).unwrap().contains(TOKEN));
}

#[test]
fn ten_reloads_of_hello_c_under_load_fail_no_call() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hello-c", sigil_guests::EXAMPLE_HELLO_C);
    let sigil = Arc::new(open(dir.path(), ""));
    running(&sigil, "hello-c");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (sigil, stop) = (sigil.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let actor = sigil.local_actor(None, None);
            let (mut calls, mut failures) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                calls += 1;
                let name = format!("caller {calls}");
                match rt.block_on(sigil.invoke(&actor, "hello-c/greet", json!({ "name": name }))) {
                    Ok(out) if out.output == json!({ "greeting": format!("hello, {name}") }) => {}
                    Ok(out) => failures.push(format!("{calls}: {}", out.output)),
                    Err(error) => failures.push(format!("{calls}: {error}")),
                }
            }
            (calls, failures)
        })
    };
    for round in 0..10 {
        let summary = sigil.reload("hello-c").unwrap();
        assert_eq!(summary.state, State::Running, "round {round}");
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (calls, failures) = caller.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {calls} failed: {failures:?}",
        failures.len()
    );
    assert!(calls > 10, "the caller hardly ran: {calls}");
}

#[test]
fn a_new_generation_that_does_not_load_leaves_the_old_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hello-c", sigil_guests::EXAMPLE_HELLO_C);
    let sigil = open(dir.path(), "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let actor = sigil.local_actor(None, None);
    let greet = || {
        rt.block_on(sigil.invoke(&actor, "hello-c/greet", json!({ "name": "Ada" })))
            .map(|i| i.output)
    };
    let plugin = dir.path().join("plugins/hello-c");

    // A component that does not compile.
    std::fs::write(plugin.join("plugin.wasm"), b"\0asm this is not a component").unwrap();
    let error = sigil.reload("hello-c").unwrap_err().to_string();
    assert!(error.contains("did not load"), "{error}");
    assert_eq!(greet().unwrap(), json!({ "greeting": "hello, Ada" }));

    // A manifest that does not validate.
    std::fs::copy(sigil_guests::EXAMPLE_HELLO_C, plugin.join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        manifest.replace("tier = \"wasm\"", "tier = \"vm\""),
    )
    .unwrap();
    let error = sigil.reload("hello-c").unwrap_err().to_string();
    assert!(error.contains("execution.tier"), "{error}");
    assert_eq!(greet().unwrap(), json!({ "greeting": "hello, Ada" }));
    running(&sigil, "hello-c");
}

#[test]
fn a_hot_reload_plugin_reloads_when_its_files_change_and_a_broken_change_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hello-c", sigil_guests::EXAMPLE_HELLO_C);
    let plugin = dir.path().join("plugins/hello-c");
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    let hot = format!("{manifest}\n[lifecycle]\nhot_reload = true\n");
    std::fs::write(plugin.join("plugin.toml"), &hot).unwrap();
    let sigil = Arc::new(open(dir.path(), ""));
    let mut events = sigil.subscribe();
    let _watch = Runtime::watch_hot_reload(&sigil).unwrap();
    let version = || {
        sigil
            .manager()
            .get("hello-c")
            .unwrap()
            .manifest()
            .version()
            .to_string()
    };
    let wait_for_version = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while version() != wanted {
            assert!(std::time::Instant::now() < deadline, "still {}", version());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let old = version();
    std::fs::write(plugin.join("plugin.toml"), hot.replace(&old, "9.9.9")).unwrap();
    wait_for_version("9.9.9");
    running(&sigil, "hello-c");

    // A broken component: the reload fails and 9.9.9 keeps serving; then a fixed one with a
    // new version is picked up.
    std::fs::write(plugin.join("plugin.wasm"), b"\0asm broken").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failed = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Ok(sigil_runtime::Event::ReloadFailed { plugin, error }) =
                    events.recv().await
                {
                    break (plugin, error);
                }
            }
        })
        .await
    });
    let (failed_plugin, error) = failed.expect("no reload_failed event");
    assert_eq!(failed_plugin, "hello-c");
    assert!(error.contains("did not load"), "{error}");
    let actor = sigil.local_actor(None, None);
    let out = rt
        .block_on(sigil.invoke(&actor, "hello-c/greet", json!({ "name": "Ada" })))
        .unwrap();
    assert_eq!(out.output, json!({ "greeting": "hello, Ada" }));
    assert_eq!(version(), "9.9.9");
    std::fs::copy(sigil_guests::EXAMPLE_HELLO_C, plugin.join("plugin.wasm")).unwrap();
    std::fs::write(plugin.join("plugin.toml"), hot.replace(&old, "9.9.10")).unwrap();
    wait_for_version("9.9.10");
    running(&sigil, "hello-c");
}
