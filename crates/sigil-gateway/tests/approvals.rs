//! Approvals end to end over real HTTP: a tool call held by `[approvals]` is listed by
//! `GET /v1/approvals` and announced on `/v1/events`, decided through the API by a user holding
//! `approvals.decide` (and by nobody else), times out to a deny, and leaves every step in the
//! audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Server, assert_error, send};
use serde_json::{Value, json};
use sigil_gateway::TokenStore;

/// `fs` reaches the host (its manifest says `scope = "host"`); `text` stays in its sandbox.
fn config(timeout_ms: u64) -> String {
    format!(
        r#"{}
[users.ops]
permissions = ["approvals.decide", "admin.audit"]

[approvals]
require = ["scope:host"]
timeout_ms = {timeout_ms}
"#,
        common::CONFIG
    )
}

/// A server with `approvals`, and a token for `ops`, who may decide but not call tools.
async fn start(timeout_ms: u64) -> (Server, String) {
    let server = Server::start_with(&config(timeout_ms)).await;
    let store = TokenStore::open(&server.home.path().join("sigil.db")).unwrap();
    let ops = store.create("ops", Some("approver")).unwrap().secret;
    (server, ops)
}

fn invoke_in_background(
    server: &Server,
    user: &str,
    target: &str,
    input: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = server.post(&format!("/v1/tools/{target}/invoke"), user, input);
    tokio::spawn(send(request))
}

fn as_ops(server: &Server, ops: &str, path: &str) -> reqwest::RequestBuilder {
    server.client.post(server.url(path)).bearer_auth(ops)
}

/// Polls `GET /v1/approvals` as `ops` until `count` are pending.
async fn pending(server: &Server, ops: &str, count: usize) -> Vec<Value> {
    for _ in 0..600 {
        let (status, body) = send(
            server
                .client
                .get(server.url("/v1/approvals"))
                .bearer_auth(ops),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let approvals = body["approvals"].as_array().unwrap().clone();
        if approvals.len() == count {
            return approvals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {count} pending approvals");
}

/// Reads server-sent events until one satisfies `wanted`.
async fn next_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    wanted: impl Fn(&str, &Value) -> bool,
) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&data).unwrap();
            if wanted(&name, &value) {
                return value;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(60), response.chunk())
            .await
            .expect("no event within a minute")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// The call's audit records as (kind, decision, user, rule).
async fn audit_of(server: &Server, call_id: &str) -> Vec<(String, Value, String, String)> {
    let (status, body) =
        send(server.get(&format!("/v1/audit?call_id={call_id}"), Some("admin"))).await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["decision"].clone(),
                r["actor"]["user"].as_str().unwrap_or("-").to_string(),
                r["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_is_listed_announced_and_approved_through_the_api() {
    let (mut server, ops) = start(60_000).await;
    let mut events = server
        .client
        .get(server.url("/v1/events"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    next_event(&mut events, &mut buffer, |n, _| n == "ready").await;

    let dir = server.home.path().display().to_string();
    let call = invoke_in_background(&server, "admin", "fs/list_dir", json!({ "path": dir }));
    let approvals = pending(&server, &ops, 1).await;
    let approval = &approvals[0];
    let id = approval["id"].as_str().unwrap().to_string();
    assert_eq!(
        (approval["plugin"].as_str(), approval["tool"].as_str()),
        (Some("fs"), Some("list_dir"))
    );
    assert_eq!(approval["actor"]["user"], "admin");
    assert_eq!(approval["input"], json!({ "path": dir }));
    assert!(
        approval["reason"]
            .as_str()
            .unwrap()
            .contains("approvals.require[0] `scope:host`"),
        "{approval}"
    );
    let announced = next_event(&mut events, &mut buffer, |n, _| n == "approval_requested").await;
    assert_eq!(announced["approval"]["id"], id.as_str());
    assert_eq!(announced["approval"]["call_id"], approval["call_id"]);

    // A tool outside the rules runs at once meanwhile.
    let (status, body) = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "x" }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    // Carol neither decides nor made the call: she sees nothing pending.
    let (_, body) = send(server.get("/v1/approvals", Some("carol"))).await;
    assert_eq!(body["approvals"], json!([]));

    // Bob may not decide: 403, recorded, and the call stays pending.
    let refused = send(server.post(&format!("/v1/approvals/{id}/approve"), "bob", json!({}))).await;
    assert_error(&refused, 403, "forbidden");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approvals.decide")
    );
    // Admin may decide, but made this call: approving it is refused too.
    let own = send(server.post(&format!("/v1/approvals/{id}/approve"), "admin", json!({}))).await;
    assert_error(&own, 403, "own_call");
    assert_eq!(pending(&server, &ops, 1).await[0]["id"], id.as_str());
    assert!(!call.is_finished());

    let bad = send(
        as_ops(&server, &ops, &format!("/v1/approvals/{id}/approve"))
            .header("content-type", "application/json")
            .body("{\"why\": 1}"),
    )
    .await;
    assert_error(&bad, 400, "invalid_body");

    let (status, decided) = send(
        as_ops(&server, &ops, &format!("/v1/approvals/{id}/approve"))
            .header("content-type", "application/json")
            .body(json!({ "reason": "expected" }).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["rule"], "approved by ops: expected");
    let (status, result) = call.await.unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["call_id"], approval["call_id"]);
    assert!(
        result["output"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "sigil.toml")
    );
    let event = next_event(&mut events, &mut buffer, |n, _| n == "approval_decided").await;
    assert_eq!(
        (
            event["id"].as_str(),
            event["decision"].as_str(),
            event["decided_by"].as_str()
        ),
        (Some(id.as_str()), Some("approve"), Some("ops"))
    );

    // Deciding again, or an unknown id.
    let again = send(as_ops(&server, &ops, &format!("/v1/approvals/{id}/deny"))).await;
    assert_error(&again, 409, "approval_decided");
    let unknown = send(as_ops(&server, &ops, "/v1/approvals/nope/approve")).await;
    assert_error(&unknown, 404, "approval_not_found");

    let call_id = approval["call_id"].as_str().unwrap();
    let records = audit_of(&server, call_id).await;
    assert_eq!(records[0].0, "decision");
    assert_eq!(
        (&records[0].1, records[0].2.as_str()),
        (&json!("allow"), "admin")
    );
    let held: Vec<_> = records.iter().filter(|r| r.0 == "approval").collect();
    assert_eq!(held.len(), 2, "{records:?}");
    assert_eq!((&held[0].1, held[0].2.as_str()), (&Value::Null, "admin"));
    assert!(
        held[0].3.contains(&format!("approval {id} requested")),
        "{}",
        held[0].3
    );
    assert_eq!((&held[1].1, held[1].2.as_str()), (&json!("allow"), "ops"));
    assert_eq!(held[1].3, "approved by ops: expected");
    // Requested and approved before the plugin ran (its fs.read decisions) and ended.
    assert_eq!(
        (records[1].0.as_str(), records[2].0.as_str()),
        ("approval", "approval")
    );
    assert_eq!(records.last().unwrap().0, "outcome");
    // Bob's refused attempt is recorded too.
    let (_, body) = send(server.get("/v1/audit?user=bob&decision=deny", Some("admin"))).await;
    assert!(
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["capability"] == "approvals.decide"),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_denied_through_the_api_fails_without_running() {
    let (mut server, ops) = start(60_000).await;
    let call = invoke_in_background(
        &server,
        "admin",
        "fs/read_text",
        json!({ "path": "/etc/hostname" }),
    );
    let approvals = pending(&server, &ops, 1).await;
    let id = approvals[0]["id"].as_str().unwrap();
    let call_id = approvals[0]["call_id"].as_str().unwrap();
    // No body at all is fine: no reason given.
    let (status, decided) = send(as_ops(&server, &ops, &format!("/v1/approvals/{id}/deny"))).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["rule"], "denied by ops");
    let result = call.await.unwrap();
    assert_error(&result, 403, "approval_denied");
    assert!(
        result.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("denied by ops")
    );
    let records = audit_of(&server, call_id).await;
    let kinds: Vec<(&str, &Value, &str)> = records
        .iter()
        .map(|r| (r.0.as_str(), &r.1, r.2.as_str()))
        .collect();
    // No fs.read decision: the plugin never ran.
    assert_eq!(
        kinds,
        vec![
            ("decision", &json!("allow"), "admin"),
            ("approval", &Value::Null, "admin"),
            ("approval", &json!("deny"), "ops"),
            ("outcome", &Value::Null, "admin"),
        ]
    );
    assert_eq!(records[3].3, "stopped at approval");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_decides_times_out_to_a_deny() {
    let (mut server, ops) = start(400).await;
    let mut events = server
        .client
        .get(server.url("/v1/events"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    next_event(&mut events, &mut buffer, |n, _| n == "ready").await;
    let (status, body) = send(server.post(
        "/v1/tools/fs/list_dir/invoke",
        "admin",
        json!({ "path": server.home.path().display().to_string() }),
    ))
    .await;
    assert_error(&(status, body.clone()), 403, "approval_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 400 ms"),
        "{body}"
    );
    let requested = next_event(&mut events, &mut buffer, |n, _| n == "approval_requested").await;
    let id = requested["approval"]["id"].as_str().unwrap().to_string();
    let decided = next_event(&mut events, &mut buffer, |n, _| n == "approval_decided").await;
    assert_eq!(
        (decided["id"].as_str(), decided["decision"].as_str()),
        (Some(id.as_str()), Some("deny"))
    );
    assert_eq!(decided["decided_by"], Value::Null);
    assert_eq!(pending(&server, &ops, 0).await, Vec::<Value>::new());
    let late = send(as_ops(
        &server,
        &ops,
        &format!("/v1/approvals/{id}/approve"),
    ))
    .await;
    assert_error(&late, 409, "approval_decided");
    let call_id = requested["approval"]["call_id"].as_str().unwrap();
    let records = audit_of(&server, call_id).await;
    let timed_out = &records[2];
    assert_eq!(
        (timed_out.0.as_str(), &timed_out.1, timed_out.2.as_str()),
        ("approval", &json!("deny"), "admin")
    );
    assert!(
        timed_out.3.contains("approvals.timeout_ms"),
        "{}",
        timed_out.3
    );
    let (_, verify) = send(server.get("/v1/audit/verify", Some("admin"))).await;
    assert_eq!(verify["intact"], true, "{verify}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_routes_are_documented_and_need_a_token() {
    let (mut server, _) = start(60_000).await;
    let (_, doc) = send(server.get("/openapi.json", None)).await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/approvals",
        "/v1/approvals/{id}/approve",
        "/v1/approvals/{id}/deny",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(doc["components"]["schemas"]["PendingApprovalBody"].is_object());
    // Tool listings say which tools wait for a person, and why.
    let (_, tools) = send(server.get("/v1/tools", Some("admin"))).await;
    let approval_of = |plugin: &str, name: &str| {
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["plugin"] == plugin && t["name"] == name)
            .unwrap()["approval"]
            .clone()
    };
    assert!(
        approval_of("fs", "list_dir")
            .as_str()
            .unwrap()
            .contains("approvals.require[0] `scope:host`")
    );
    assert_eq!(approval_of("text", "sha256"), Value::Null);
    for (method, path) in [
        ("GET", "/v1/approvals"),
        ("POST", "/v1/approvals/x/approve"),
        ("POST", "/v1/approvals/x/deny"),
    ] {
        let result = send(
            server
                .client
                .request(method.parse().unwrap(), server.url(path)),
        )
        .await;
        assert_error(&result, 401, "unauthenticated");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_denies_the_calls_still_waiting_instead_of_waiting_out_the_timeout() {
    let (mut server, ops) = start(600_000).await;
    let dir = server.home.path().display().to_string();
    let call = invoke_in_background(&server, "admin", "fs/list_dir", json!({ "path": dir }));
    let approvals = pending(&server, &ops, 1).await;
    let call_id = approvals[0]["call_id"].as_str().unwrap().to_string();
    tokio::time::timeout(Duration::from_secs(60), server.shutdown())
        .await
        .expect("the shutdown waited for the pending approval");
    let result = call.await.unwrap();
    assert_error(&result, 403, "approval_denied");
    assert!(
        result.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    let log = sigil_audit::AuditLog::open(
        &server.home.path().join("sigil.db"),
        &sigil_audit::KeyFiles::in_dir(&server.home.path().join("state")),
    )
    .unwrap();
    let records = log
        .query(&sigil_audit::Filter {
            call_id: Some(call_id),
            ..sigil_audit::Filter::default()
        })
        .unwrap();
    let last_approval = records
        .iter()
        .rev()
        .find(|r| r.record.kind == sigil_audit::RecordKind::Approval)
        .unwrap();
    assert_eq!(
        last_approval.record.decision,
        Some(sigil_audit::Verdict::Deny)
    );
    assert_eq!(
        last_approval.record.rule,
        "denied: the daemon is shutting down"
    );
    assert_eq!(
        records.last().unwrap().record.kind,
        sigil_audit::RecordKind::Outcome
    );
}
