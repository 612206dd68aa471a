//! The MCP bridge on the real sandbox: an MCP server built with the official Python SDK
//! (`tests/fixtures/mcp-server`, PyPI `mcp`) runs as a process-tier plugin with `execution.protocol
//! = "mcp"`. Its tools are Sigil tools, each call checked and audited; it is contained like any
//! plugin; and a tool whose definition changes after install is held until an operator
//! approves it again, whether it changes while running or across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_audit::{Actor, Filter, RecordKind, Verdict};
use sigil_runtime::{HeldTool, InvokeError};

use common::World;
use common::python::{open_python, reopen, repo};

const ID: &str = "mcp-fixture";

fn bridged_with(edit: &dyn Fn(String) -> String, consent: &[String]) -> World {
    let mut all = vec!["fs.write:<root>/writable/**".to_string()];
    all.extend_from_slice(consent);
    open_python(
        &repo().join("crates/sigil-process/tests/fixtures/mcp-server"),
        ID,
        edit,
        &all,
        "",
    )
}

fn bridged() -> World {
    bridged_with(&|m| m, &[])
}

fn held(w: &World) -> Vec<HeldTool> {
    w.sigil.manager().get(ID).unwrap().held()
}

/// Waits (bounded) until the plugin holds some tool: the server's change notification and the
/// listing it triggers arrive after the call that made the change has returned.
fn wait_for_held(w: &World) -> Vec<HeldTool> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = held(w);
        if !held.is_empty() {
            return held;
        }
        assert!(Instant::now() < deadline, "nothing was held");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn operator() -> Actor {
    Actor {
        user: Some("alice".into()),
        ..Actor::default()
    }
}

#[test]
fn the_servers_tools_are_sigil_tools_and_each_call_is_audited() {
    let w = bridged();
    let entry = w.sigil.manager().get(ID).unwrap();
    let mut names: Vec<String> = entry.tools().map(|t| t.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["add", "echo", "fail", "fetch", "read", "rug_pull", "sleep"]
    );
    let add = entry.tools().find(|t| t.name == "add").unwrap();
    assert_eq!(add.description, "Adds two integers.");
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    assert!(held(&w).is_empty(), "{:?}", held(&w));

    assert_eq!(
        w.ok("add", json!({ "a": 2, "b": 3 })),
        json!({ "result": 5 })
    );
    // The SDK returns a function's value as structured content, which is the output.
    assert_eq!(
        w.ok("echo", json!({ "text": "hi" })),
        json!({ "result": "hi" })
    );
    // Sigil validates arguments against the server's own schema before the server sees them.
    let Err(InvokeError::InvalidArguments { errors, .. }) =
        w.call("add", json!({ "a": "two", "b": 3 }))
    else {
        panic!("a string for an integer was accepted");
    };
    assert!(errors.iter().any(|e| e.contains("/a")), "{errors:?}");
    let error = w.error_of("fail", json!({}));
    assert!(error.contains("this tool always fails"), "{error}");

    let outcomes: Vec<String> = w
        .records(Filter {
            kind: Some(RecordKind::Outcome),
            plugin: Some(ID.into()),
            ..Filter::default()
        })
        .into_iter()
        .map(|r| r.record.outcome.unwrap_or_default())
        .collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(outcomes[0], "ok");
    assert!(outcomes[3].contains("always fails"), "{outcomes:?}");
}

#[test]
fn the_server_is_contained_like_any_process_plugin() {
    let w = bridged();
    let secret_dir = w.root.join("not-granted");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key"), "host secret").unwrap();
    for path in [
        "/etc/shadow".to_string(),
        secret_dir.join("key").display().to_string(),
    ] {
        let error = w.error_of("read", json!({ "path": path }));
        assert!(
            error.contains("No such file") || error.contains("Permission denied"),
            "{path}: {error}"
        );
    }
    // No `net.*` grant: no proxy, no network; the connection never reaches the host.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = w.ok(
        "fetch",
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    );
    assert!(text(&out).starts_with("refused:"), "{out}");
    assert!(listener.accept().is_err(), "the sandbox reached the host");
    assert_eq!(
        w.ok("add", json!({ "a": 1, "b": 1 })),
        json!({ "result": 2 })
    );
}

#[test]
fn egress_is_decided_for_the_call_and_audited() {
    let server = tiny_http_server();
    let port = server.port;
    let granted = format!("net.connect:127.0.0.1:{port}");
    let w = bridged_with(
        &|m| {
            format!(
                "{m}\n[[capabilities.request]]\ncapability = \"{granted}\"\nreason = \"Fetches from the test server.\"\n"
            )
        },
        std::slice::from_ref(&granted),
    );
    let out = w.ok(
        "fetch",
        json!({ "url": format!("http://127.0.0.1:{port}/hello") }),
    );
    assert_eq!(text(&out), "200 hello from the host", "{out}");
    assert!(w.allowed().contains(&granted), "{:?}", w.allowed());

    // Another port of the same host is not granted: denied by the proxy and audited.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_port = other.local_addr().unwrap().port();
    let out = w.ok(
        "fetch",
        json!({ "url": format!("http://127.0.0.1:{other_port}/") }),
    );
    assert!(text(&out).contains("403"), "{out}");
    assert!(
        w.denials()
            .contains(&format!("net.connect:127.0.0.1:{other_port}")),
        "{:?}",
        w.denials()
    );
    assert!(other.accept().is_err(), "the denied host was reached");
}

#[test]
fn a_tool_changed_while_running_is_held_until_an_operator_approves_it() {
    let w = bridged();
    assert_eq!(w.ok("rug_pull", json!({})), json!({ "result": "changed" }));
    let pending = wait_for_held(&w);
    assert_eq!(
        pending,
        vec![
            HeldTool {
                tool: "add".into(),
                reason: "its description changed since the last approval".into()
            },
            HeldTool {
                tool: "exfiltrate".into(),
                reason: "offered by the MCP server since the last approval".into()
            },
        ]
    );
    let summary = w.sigil.manager().get(ID).unwrap().summary();
    assert_eq!(summary.held, pending);

    // The changed tool is refused, and the refusal is audited; the others still serve.
    let Err(InvokeError::Held { tool, reason, .. }) = w.call("add", json!({ "a": 1, "b": 2 }))
    else {
        panic!("a held tool was called");
    };
    assert_eq!(
        (tool.as_str(), reason.as_str()),
        ("add", pending[0].reason.as_str())
    );
    let (_, outcome) = w.last_outcome();
    assert!(outcome.contains("held for approval"), "{outcome}");
    assert_eq!(
        text(&w.ok("echo", json!({ "text": "still here" }))),
        "still here"
    );

    // The operator approves: recorded, the plugin reloads with the approved definitions, and
    // the new tool is served.
    let approval = w.sigil.approve_tools(ID, &operator()).unwrap();
    assert_eq!(approval.approved, ["add", "exfiltrate"]);
    assert!(
        approval.plugin.held.is_empty(),
        "{:?}",
        approval.plugin.held
    );
    assert!(approval.plugin.tools.contains(&"exfiltrate".to_string()));
    assert!(held(&w).is_empty(), "{:?}", held(&w));
    assert_eq!(
        w.ok("add", json!({ "a": 1, "b": 2 })),
        json!({ "result": 3 })
    );
    let approvals: Vec<String> = w
        .records(Filter {
            decision: Some(Verdict::Allow),
            plugin: Some(ID.into()),
            ..Filter::default()
        })
        .into_iter()
        .map(|r| r.record.rule)
        .filter(|rule| rule.starts_with("operator approved"))
        .collect();
    assert_eq!(
        approvals,
        ["operator approved the current definitions of: add, exfiltrate"]
    );
}

#[test]
fn a_tool_changed_across_a_restart_is_still_held() {
    let w = bridged();
    assert!(held(&w).is_empty());
    // The same command serves other definitions after an update while Sigil is down.
    std::fs::write(w.root.join("writable/variant.txt"), "v2").unwrap();
    let w = reopen(w);
    w.assert_running();
    assert_eq!(
        held(&w),
        vec![HeldTool {
            tool: "add".into(),
            reason: "its description changed since the last approval".into()
        }]
    );
    let error = w.error_of("add", json!({ "a": 1, "b": 2 }));
    assert!(error.contains("held for approval"), "{error}");

    // Approving a disabled plugin's tools leaves it disabled; enabling it serves them.
    w.sigil.disable(ID).unwrap();
    let approval = w.sigil.approve_tools(ID, &operator()).unwrap();
    assert_eq!(approval.approved, ["add"]);
    assert_eq!(approval.plugin.state, sigil_runtime::State::Stopped);
    assert!(w.sigil.disabled().contains(ID));
    w.sigil.enable(ID).unwrap();
    let add = w.sigil.manager().get(ID).unwrap();
    let add = add.tools().find(|t| t.name == "add").unwrap().clone();
    assert_eq!(
        add.description,
        "Adds two integers, now with overflow checks."
    );
    // Approved once, approved for good: a restart does not hold it again.
    let w = reopen(w);
    assert!(held(&w).is_empty(), "{:?}", held(&w));
    assert_eq!(
        w.ok("add", json!({ "a": 1, "b": 2 })),
        json!({ "result": 3 })
    );
}

#[test]
fn a_hung_tool_ends_at_the_deadline_and_the_server_comes_back() {
    let w = bridged_with(
        &|m| m.replace("timeout_ms = 20000", "timeout_ms = 3000"),
        &[],
    );
    let error = w.error_of("sleep", json!({ "seconds": 60 }));
    assert!(error.contains("deadline of 3000 ms exceeded"), "{error}");
    assert_eq!(
        w.ok("add", json!({ "a": 4, "b": 4 })),
        json!({ "result": 8 })
    );
}

/// A loopback HTTP server answering every request with `hello from the host`.
struct TinyServer {
    port: u16,
}

fn tiny_http_server() -> TinyServer {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = "hello from the host";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    TinyServer { port }
}

/// The text a tool of the fixture returned (its structured `result`).
fn text(value: &Value) -> &str {
    value["result"].as_str().unwrap_or_default()
}
