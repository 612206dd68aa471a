//! A well-behaved process plugin, end to end through `Runtime::invoke`: the handshake, host
//! calls through the enforcer, and the execution pipeline with each step in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::json;
use sigil_audit::{Filter, Verdict};
use sigil_runtime::State;

use common::{SECRET, Setup, World};

fn echo() -> World {
    let binaries = common::binaries();
    common::open(&Setup::new("echo", &binaries.echo))
}

#[test]
fn echo_round_trips_and_the_plugin_is_listed_running() {
    let w = echo();
    let entry = w.sigil.manager().get("echo").unwrap();
    assert_eq!(
        entry.lifecycle().state(),
        State::Running,
        "{:?}",
        entry.lifecycle().error()
    );
    let tools: Vec<String> = entry.tools().map(|t| t.name.clone()).collect();
    assert!(
        tools.contains(&"echo".to_string()) && tools.contains(&"stage".to_string()),
        "{tools:?}"
    );
    let input = json!({ "ping": 1, "text": "héllo" });
    assert_eq!(w.ok("echo", input.clone()), input);
    // The decision to call and the outcome are both recorded.
    assert!(w.allowed().contains(&"tool.echo.echo".to_string()));
    assert_eq!(w.last_outcome().1, "ok");
}

fn steps_of_last_call(w: &World) -> String {
    w.last_outcome().0
}

fn stored(w: &World, key: &str) -> serde_json::Value {
    w.ok("kv", json!({ "key": key }))["value"].clone()
}

#[test]
fn the_pipeline_runs_every_step_and_records_it() {
    let w = echo();
    let out = w.ok("stage", json!({ "key": "fine", "fail": "none" }));
    assert_eq!(out, json!({ "stored": "fine" }));
    assert_eq!(
        steps_of_last_call(&w),
        "validate-pre ok; invoke ok; validate-post ok"
    );
    assert_eq!(stored(&w, "fine"), "staged");
}

#[test]
fn a_failing_execute_is_rolled_back() {
    let w = echo();
    let error = w.error_of("stage", json!({ "key": "exec", "fail": "execute" }));
    assert!(
        error.contains("invoke failed: told to fail execute (rollback: rolled back)"),
        "{error}"
    );
    let steps = steps_of_last_call(&w);
    assert!(
        steps.starts_with("validate-pre ok; invoke failed: told to fail execute; rollback ok"),
        "{steps}"
    );
    // The key the invocation stored was removed by the rollback.
    assert_eq!(stored(&w, "exec"), serde_json::Value::Null);
}

#[test]
fn a_failing_validate_post_is_rolled_back() {
    let w = echo();
    let error = w.error_of("stage", json!({ "key": "post", "fail": "post" }));
    assert!(error.contains("validate-post failed"), "{error}");
    assert!(error.contains("(rollback: rolled back)"), "{error}");
    let steps = steps_of_last_call(&w);
    assert!(
        steps.contains("invoke ok; validate-post failed") && steps.ends_with("rollback ok"),
        "{steps}"
    );
    assert_eq!(stored(&w, "post"), serde_json::Value::Null);
}

#[test]
fn a_failing_validate_pre_stops_before_invoke() {
    let w = echo();
    let error = w.error_of("stage", json!({ "key": "pre", "fail": "pre" }));
    assert!(
        error.contains("validate-pre failed: invalid input: told to fail validate-pre"),
        "{error}"
    );
    assert!(!steps_of_last_call(&w).contains("invoke"));
    assert_eq!(stored(&w, "pre"), serde_json::Value::Null);
}

#[test]
fn config_comes_from_sigil_toml() {
    let w = echo();
    assert_eq!(w.ok("config", json!({})), json!({ "greeting": "hi" }));
}

#[test]
fn kv_is_checked_per_key_and_denials_are_audited() {
    let w = echo();
    w.ok("kv", json!({ "key": "visits", "value": "3" }));
    assert_eq!(stored(&w, "visits"), "3");
    let error = w.error_of("kv", json!({ "key": "locked.door", "value": "x" }));
    assert!(error.contains("denied"), "{error}");
    assert!(w.denials().contains(&"kv.write:locked.door".to_string()));
}

#[test]
fn a_kv_key_that_breaks_the_capability_grammar_is_a_recorded_deny() {
    let w = echo();
    // (value to set, or none to get; key the plugin sends; the capability as recorded)
    let table = [
        (None, "nul\0byte", "kv.read:nul\\0byte"),
        (Some("x"), "line\nbreak", "kv.write:line\\nbreak"),
        (
            Some("x"),
            "tab\tand\u{202e}bidi",
            "kv.write:tab\\tand\\u{202e}bidi",
        ),
    ];
    for (value, key, recorded) in table {
        let before = w.denials().len();
        let input = match value {
            Some(value) => json!({ "key": key, "value": value }),
            None => json!({ "key": key }),
        };
        let error = w.error_of("kv", input);
        assert!(error.contains("malformed capability"), "{key:?}: {error}");
        let denied = w.denials();
        assert_eq!(denied.len(), before + 1, "{key:?}: one deny record");
        assert_eq!(denied.last().map(String::as_str), Some(recorded));
    }
    let rules: Vec<String> = w
        .records(sigil_audit::Filter {
            decision: Some(sigil_audit::Verdict::Deny),
            ..sigil_audit::Filter::default()
        })
        .into_iter()
        .map(|r| r.record.rule)
        .collect();
    assert_eq!(rules.len(), 3);
    assert!(
        rules
            .iter()
            .all(|rule| rule.starts_with("malformed capability: ")),
        "{rules:?}"
    );
    assert!(w.sigil.audit().verify().unwrap().is_intact());
}

#[test]
fn secrets_are_placeholders_and_ungranted_ones_are_denied() {
    let w = echo();
    let out = w.ok("secret", json!({ "name": "token" }));
    let text = out.to_string();
    assert!(text.contains("sigil-secret-"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    let error = w.error_of("secret", json!({ "name": "other" }));
    assert!(error.contains("denied"), "{error}");
    assert!(w.denials().contains(&"secret.use:other".to_string()));
}

/// Serves `count` requests on loopback, sending each request's head back.
async fn http_server(count: usize) -> (u16, std::sync::mpsc::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
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
            let reply = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong";
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (port, rx)
}

#[test]
fn http_through_the_host_is_checked_and_gets_the_secret_injected() {
    let binaries = common::binaries();
    let probe = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (port, heads) = probe.block_on(http_server(1));
    let request =
        format!(r#"{{ capability = "net.connect:127.0.0.1:{port}", reason = "fetches" }}"#);
    let consent = format!("net.connect:127.0.0.1:{port}");
    let mut setup = Setup::new("fetcher", &binaries.echo);
    let requests = [request.as_str()];
    let consents = [consent.as_str()];
    setup.requests = &requests;
    setup.consent = &consents;
    let w = common::open(&setup);
    w.assert_running();

    let url = format!("http://127.0.0.1:{port}/weather");
    let out = w.ok("fetch", json!({ "url": url, "secret": "token" }));
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "pong");
    let head = heads.recv().unwrap();
    assert!(head.starts_with("GET /weather HTTP/1.1"), "{head}");
    assert!(
        head.to_lowercase()
            .contains(&format!("authorization: bearer {}", SECRET.to_lowercase())),
        "the server got the secret: {head}"
    );
    assert!(
        w.allowed()
            .contains(&format!("net.connect:127.0.0.1:{port}"))
    );

    // A destination that was not granted: denied before anything leaves, and audited.
    let error = w.error_of("fetch", json!({ "url": "http://127.0.0.1:9/x" }));
    assert!(error.contains("denied"), "{error}");
    assert!(w.denials().contains(&"net.connect:127.0.0.1:9".to_string()));
}

/// A secret is bound to its destinations in `sigil.toml`: granting its use and a network
/// destination is not enough to send it there. Each refusal happens before anything leaves
/// the host, and is a deny of `secret.use:<name>` in the audit log.
#[test]
fn a_secret_is_injected_only_into_requests_to_the_destination_it_is_bound_to() {
    let binaries = common::binaries();
    let probe = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (port, heads) = probe.block_on(http_server(1));
    let request =
        format!(r#"{{ capability = "net.connect:127.0.0.1:{port}", reason = "fetches" }}"#);
    let elsewhere = r#"{ capability = "secret.use:elsewhere", reason = "elsewhere" }"#;
    let consent = format!("net.connect:127.0.0.1:{port}");
    let mut setup = Setup::new("fetcher", &binaries.echo);
    let requests = [request.as_str(), elsewhere];
    let consents = [consent.as_str(), "secret.use:elsewhere"];
    setup.requests = &requests;
    setup.consent = &consents;
    let w = common::open(&setup);
    w.assert_running();
    let base = format!("http://127.0.0.1:{port}");

    // (input, what the refusal names) for requests the grants allow but the binding does not.
    let refused = [
        // Another path on the bound host: an echo endpoint would hand the value back.
        (
            json!({ "url": format!("{base}/echo"), "secret": "token" }),
            "/echo",
        ),
        (
            json!({ "url": format!("{base}/weather/../echo"), "secret": "token" }),
            "/echo",
        ),
        (
            json!({ "url": format!("{base}/weather%2F..%2Fecho"), "secret": "token" }),
            "weather%2F",
        ),
        // The bound path, but a header the secret is not bound to (one a server may echo).
        (
            json!({ "url": format!("{base}/weather"), "secret": "token", "secret_header": "x-echo" }),
            "header x-echo",
        ),
        // A secret bound to another host, sent to one the plugin may reach.
        (
            json!({ "url": format!("{base}/weather"), "secret": "elsewhere" }),
            "api.example.invalid",
        ),
    ];
    for (input, named) in refused {
        let before = w.denials().len();
        let error = w.error_of("fetch", input.clone());
        assert!(
            error.contains("denied") && error.contains("not bound"),
            "{input}: {error}"
        );
        assert!(error.contains(named), "{input}: {error}");
        assert!(!error.contains(SECRET), "{error}");
        let denials = w.records(Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        });
        assert_eq!(denials.len(), before + 1, "{input}: one deny recorded");
        let last = denials.last().unwrap();
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

    // The bound destination still gets it.
    let out = w.ok(
        "fetch",
        json!({ "url": format!("{base}/weather"), "secret": "token" }),
    );
    assert_eq!(out["status"], 200, "{out}");
    let head = heads.recv().unwrap();
    assert!(
        head.to_lowercase()
            .contains(&format!("authorization: bearer {}", SECRET.to_lowercase())),
        "{head}"
    );
}

#[test]
fn http_to_another_spelling_of_a_denied_address_is_denied_as_that_address_and_audited() {
    let binaries = common::binaries();
    let probe = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (port, heads) = probe.block_on(http_server(1));
    // Any host on this port is granted; the user's deny carves out the loopback address.
    let request = format!(r#"{{ capability = "net.connect:*:{port}", reason = "fetches" }}"#);
    let consent = format!("net.connect:*:{port}");
    let mut setup = Setup::new("spellings", &binaries.echo);
    let requests = [request.as_str()];
    let consents = [consent.as_str()];
    setup.requests = &requests;
    setup.consent = &consents;
    setup.user_deny = &["net.connect:127.0.0.1:*"];
    let w = common::open(&setup);
    w.assert_running();

    let decided = format!("net.connect:127.0.0.1:{port}");
    let spellings = [
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
    ];
    for (i, host) in spellings.iter().enumerate() {
        let url = format!("http://{host}:{port}/x");
        let error = w.error_of("fetch", json!({ "url": url }));
        assert!(error.contains("denied"), "{url}: {error}");
        let denials = w.denials();
        assert_eq!(
            denials.iter().filter(|d| **d == decided).count(),
            i + 1,
            "{url} is recorded as a deny of {decided}: {denials:?}"
        );
    }
    assert!(
        heads.try_recv().is_err(),
        "a request reached the denied address"
    );
}
