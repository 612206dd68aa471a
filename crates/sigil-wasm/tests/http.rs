//! Outgoing HTTP from a plugin: checked against `net.connect` grants in the host, with the
//! secret injected there. A real HTTP server on loopback, started by the test, sees what
//! arrives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::mpsc;

use serde_json::{Value, json};
use sigil_audit::{Filter, Verdict};
use sigil_runtime::{Home, InvokeError, Runtime, State};
use sigil_wasm::WasmTier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "tok-81f0c2d9-secret";

/// Serves `count` requests on loopback, sending each request's head to the test.
async fn server(count: usize) -> (u16, mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    tokio::spawn(async move {
        for _ in 0..count {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n) = socket.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).to_string());
            let body = "pong";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (port, rx)
}

fn open(root: &std::path::Path, requests: &str) -> Runtime {
    open_with(
        root,
        requests,
        r#"["net.connect:127.0.0.1:*", "secret.use:token", "secret.use:elsewhere"]"#,
        "",
    )
}

/// The fetcher plugin requesting `requests`, consented `consent`, under `policy` (lines of a
/// `[policy]` table).
fn open_with(root: &std::path::Path, requests: &str, consent: &str, policy: &str) -> Runtime {
    let plugin_dir = root.join("plugins/fetcher");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::copy(sigil_guests::HOSTILE_HTTP, plugin_dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            r#"
id = "fetcher"
name = "Fetcher"
version = "0.1.0"
description = "Fetches URLs."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [{requests}]

[execution]
tier = "wasm"
entry = "plugin.wasm"

[execution.limits]
timeout_ms = 5000
"#
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[policy]
{policy}

[plugins.fetcher]
consent = {consent}

[secrets.token]
value = "{SECRET}"
destinations = [{{ host = "127.0.0.1", header = "authorization", path = "/ping" }}]

[secrets.elsewhere]
value = "{SECRET}"
destinations = [{{ host = "api.example.invalid", header = "authorization" }}]
"#
        ),
    )
    .unwrap();
    let home = Home::resolve(Some(root)).unwrap();
    let tier = WasmTier::new(root.join("cache/wasm")).unwrap();
    let sigil = Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Wasm, Arc::new(tier))],
    )
    .unwrap();
    let entry = sigil.manager().get("fetcher").unwrap();
    assert_eq!(
        entry.lifecycle().state(),
        State::Running,
        "{:?}",
        entry.lifecycle().error()
    );
    sigil
}

fn get(sigil: &Runtime, rt: &tokio::runtime::Runtime, input: Value) -> Result<Value, InvokeError> {
    let actor = sigil.local_actor(None, None);
    rt.block_on(sigil.invoke(&actor, "fetcher/get", input))
        .map(|i| i.output)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_allowed_request_carries_the_injected_secret_and_the_plugin_never_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (port, heads) = rt.block_on(server(1));
    let sigil = open(
        dir.path(),
        r#"{ capability = "net.connect:127.0.0.1:*", reason = "r" }, { capability = "secret.use:token", reason = "r" }"#,
    );
    let out = get(
        &sigil,
        &rt,
        json!({ "url": format!("http://127.0.0.1:{port}/ping"), "secret": "token" }),
    )
    .unwrap();
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "pong", "{out}");
    assert!(
        !out.to_string().contains(SECRET),
        "the plugin's view: {out}"
    );
    let head = heads
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert!(head.starts_with("GET /ping HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            SECRET.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(
        !head.contains("sigil-secret-"),
        "the placeholder was replaced: {head}"
    );
    let audited = sigil.audit().query(&Filter::default()).unwrap();
    let capabilities: Vec<_> = audited
        .iter()
        .filter_map(|r| r.record.capability.clone())
        .collect();
    assert!(
        capabilities.contains(&format!("net.connect:127.0.0.1:{port}")),
        "{capabilities:?}"
    );
    assert!(
        capabilities.contains(&"secret.use:token".to_string()),
        "{capabilities:?}"
    );
    assert!(
        !serde_json::to_string(&audited).unwrap().contains(SECRET),
        "the audit log never holds the value"
    );
}

#[test]
fn a_host_it_was_not_granted_is_denied_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let sigil = open(
        dir.path(),
        r#"{ capability = "net.connect:127.0.0.1:*", reason = "r" }, { capability = "secret.use:token", reason = "r" }"#,
    );
    let error = get(&sigil, &rt, json!({ "url": "http://localhost:9/x" }))
        .unwrap_err()
        .to_string();
    assert!(error.to_ascii_lowercase().contains("denied"), "{error}");
    let denied = sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        denied.last().unwrap().record.capability.as_deref(),
        Some("net.connect:localhost:9")
    );
}

#[test]
fn an_allowed_host_on_another_port_is_denied_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (port, heads) = rt.block_on(server(1));
    let other = if port == 65535 { port - 1 } else { port + 1 };
    let sigil = open(
        dir.path(),
        &format!(
            r#"{{ capability = "net.connect:127.0.0.1:{port}", reason = "r" }}, {{ capability = "secret.use:token", reason = "r" }}"#
        ),
    );
    // Consent covers every port; the manifest grants one.
    let error = get(
        &sigil,
        &rt,
        json!({ "url": format!("http://127.0.0.1:{other}/x") }),
    )
    .unwrap_err()
    .to_string();
    assert!(error.to_ascii_lowercase().contains("denied"), "{error}");
    let denied = sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        denied.last().unwrap().record.capability,
        Some(format!("net.connect:127.0.0.1:{other}"))
    );
    // The granted port still works.
    let ok = get(
        &sigil,
        &rt,
        json!({ "url": format!("http://127.0.0.1:{port}/x") }),
    )
    .unwrap();
    assert_eq!(ok["status"], 200);
    assert!(
        heads
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok()
    );
}

#[test]
fn a_secret_it_was_not_granted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let sigil = open(
        dir.path(),
        r#"{ capability = "net.connect:127.0.0.1:*", reason = "r" }, { capability = "secret.use:token", reason = "r" }"#,
    );
    let error = get(
        &sigil,
        &rt,
        json!({ "url": "http://127.0.0.1:9/x", "secret": "other" }),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("denied"), "{error}");
}

/// A secret is bound to its destinations in `sigil.toml`: granting its use and the network is
/// not enough to send it elsewhere. Each refusal happens before anything leaves the host and
/// is a deny of `secret.use:<name>` in the audit log.
#[test]
fn a_secret_is_injected_only_into_requests_to_the_destination_it_is_bound_to() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (port, heads) = rt.block_on(server(1));
    let sigil = open(
        dir.path(),
        r#"{ capability = "net.connect:127.0.0.1:*", reason = "r" }, { capability = "secret.use:token", reason = "r" }, { capability = "secret.use:elsewhere", reason = "r" }"#,
    );
    let base = format!("http://127.0.0.1:{port}");
    let refused = [
        json!({ "url": format!("{base}/echo"), "secret": "token" }),
        json!({ "url": format!("{base}/ping/../echo"), "secret": "token" }),
        json!({ "url": format!("{base}/ping%2F..%2Fecho"), "secret": "token" }),
        json!({ "url": format!("{base}/ping"), "secret": "elsewhere" }),
    ];
    for input in refused {
        let denied_before = denials(&sigil).len();
        let error = get(&sigil, &rt, input.clone()).unwrap_err().to_string();
        assert!(
            error.to_ascii_lowercase().contains("denied"),
            "{input}: {error}"
        );
        let denied = denials(&sigil);
        assert_eq!(
            denied.len(),
            denied_before + 1,
            "{input}: one deny recorded"
        );
        let last = denied.last().unwrap();
        assert!(
            last.record
                .capability
                .as_deref()
                .is_some_and(|c| c.starts_with("secret.use:")),
            "{last:?}"
        );
        assert!(last.record.rule.contains("not bound"), "{last:?}");
        assert!(
            heads.try_recv().is_err(),
            "{input}: nothing reached the server"
        );
    }
    let out = get(
        &sigil,
        &rt,
        json!({ "url": format!("{base}/ping"), "secret": "token" }),
    )
    .unwrap();
    assert_eq!(out["status"], 200, "{out}");
    let head = heads
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert!(
        head.contains(SECRET),
        "the bound destination gets the value: {head}"
    );
}

/// Every spelling of a loopback, unspecified or link-local destination a plugin can write.
const RESTRICTED_SPELLINGS: [&str; 15] = [
    "127.0.0.1",
    "2130706433",
    "127.1",
    "0x7f.0.0.1",
    "127.000.000.001",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::1]",
    "0",
    "0.0.0.0",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "169.254.169.254",
];

fn denials(sigil: &Runtime) -> Vec<sigil_audit::Record> {
    sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
}

/// A listener nothing may reach: `accept` fails while nobody has connected.
fn bystander() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

#[test]
fn restricted_addresses_in_every_spelling_are_refused_and_audited_under_a_wildcard_grant() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let listener = bystander();
    let port = listener.local_addr().unwrap().port();
    let sigil = open_with(
        dir.path(),
        r#"{ capability = "net.connect:*", reason = "r" }"#,
        r#"["net.connect:*"]"#,
        r#"deny = ["net.connect:127.0.0.1"]"#,
    );
    for spelling in RESTRICTED_SPELLINGS {
        let before = denials(&sigil).len();
        let error = get(
            &sigil,
            &rt,
            json!({ "url": format!("http://{spelling}:{port}/admin") }),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("HTTP-request-denied"), "{spelling}: {error}");
        let denied = denials(&sigil);
        assert!(denied.len() > before, "{spelling}: no deny record");
        let record = &denied.last().unwrap().record;
        assert!(
            record
                .capability
                .as_deref()
                .is_some_and(|c| c.starts_with("net.connect:") && c.ends_with(&format!(":{port}"))),
            "{spelling}: {record:?}"
        );
        assert!(
            record.rule.contains("denies `net.connect:127.0.0.1`")
                || record
                    .rule
                    .contains("reachable only through a grant naming it"),
            "{spelling}: {}",
            record.rule
        );
    }
    assert!(listener.accept().is_err(), "nothing reached the listener");
}

#[test]
fn a_grant_naming_a_loopback_address_or_host_reaches_it() {
    for named in ["127.0.0.1", "localhost"] {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (port, heads) = rt.block_on(server(1));
        let grant = format!("net.connect:{named}:{port}");
        let sigil = open_with(
            dir.path(),
            &format!(r#"{{ capability = "{grant}", reason = "r" }}"#),
            &format!(r#"["{grant}"]"#),
            "",
        );
        let out = get(
            &sigil,
            &rt,
            json!({ "url": format!("http://{named}:{port}/ping") }),
        )
        .unwrap();
        assert_eq!(out["status"], 200, "{named}: {out}");
        assert!(
            heads
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_ok()
        );
        let allowed: Vec<_> = sigil
            .audit()
            .query(&Filter {
                decision: Some(Verdict::Allow),
                ..Filter::default()
            })
            .unwrap()
            .into_iter()
            .filter_map(|r| r.record.capability)
            .collect();
        assert!(
            allowed.contains(&format!("net.connect:127.0.0.1:{port}")),
            "the address connected to was decided: {allowed:?}"
        );
    }
}

#[test]
fn sigils_own_listener_is_refused_and_audited_even_when_explicitly_granted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let listener = bystander();
    let address = listener.local_addr().unwrap();
    let port = address.port();
    let _protected = sigil_egress::protect_listener(address);
    let grants = ["127.0.0.1", "localhost", "0.0.0.0"].map(|h| format!("net.connect:{h}:{port}"));
    let requests: Vec<String> = grants
        .iter()
        .map(|g| format!(r#"{{ capability = "{g}", reason = "r" }}"#))
        .collect();
    let sigil = open_with(dir.path(), &requests.join(", "), &format!("{grants:?}"), "");
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "localhost",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
    ] {
        let before = denials(&sigil).len();
        let error = get(
            &sigil,
            &rt,
            json!({ "url": format!("http://{spelling}:{port}/v1/plugins") }),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("HTTP-request-denied"), "{spelling}: {error}");
        let denied = denials(&sigil);
        assert!(denied.len() > before, "{spelling}: no deny record");
        let rule = &denied.last().unwrap().record.rule;
        assert!(
            rule.contains("where Sigil itself listens"),
            "{spelling}: {rule}"
        );
    }
    assert!(listener.accept().is_err(), "nothing reached the listener");
}
