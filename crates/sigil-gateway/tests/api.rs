//! The HTTP API against a real gateway on a loopback port: authentication, enforcement and
//! its audit records, plugin management, the audit routes, events, errors and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Server, assert_error, echo_plugin, send};
use serde_json::{Value, json};
use sigil_audit::{AuditLog, Filter, Verdict};

const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_the_openapi_document_need_no_token_and_everything_else_does() {
    let server = Server::start().await;
    let (status, health) = send(server.get("/health", None)).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let (status, doc) = send(server.get("/openapi.json", None)).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/openapi.json",
        "/v1/plugins",
        "/v1/plugins/{id}",
        "/v1/plugins/{id}/enable",
        "/v1/plugins/{id}/disable",
        "/v1/plugins/{id}/reload",
        "/v1/tools",
        "/v1/tools/{plugin}/{tool}/invoke",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/workspaces",
        "/v1/users",
        "/v1/events",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        paths["/v1/tools"]["get"]["security"],
        json!([{ "bearer": [] }])
    );

    for (method, path) in [
        ("GET", "/v1/plugins"),
        ("GET", "/v1/tools"),
        ("POST", "/v1/tools/text/sha256/invoke"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/events"),
        ("DELETE", "/v1/plugins/text"),
    ] {
        let request = server
            .client
            .request(method.parse().unwrap(), server.url(path));
        let result = send(request).await;
        assert_error(&result, 401, "unauthenticated");

        let request = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth("sigil_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        let result = send(request).await;
        assert_error(&result, 401, "invalid_token");
    }
    let response = server.get("/v1/plugins", None).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_methods_and_bad_bodies_get_json_errors() {
    let server = Server::start().await;
    assert_error(&send(server.get("/nope", None)).await, 404, "not_found");
    assert_error(
        &send(server.get("/v1/nope", Some("admin"))).await,
        404,
        "not_found",
    );
    let put = server
        .client
        .put(server.url("/v1/tools"))
        .bearer_auth(&server.tokens["admin"]);
    assert_error(&send(put).await, 405, "method_not_allowed");

    let not_json = server
        .client
        .post(server.url("/v1/tools/text/sha256/invoke"))
        .bearer_auth(&server.tokens["admin"])
        .header("content-type", "application/json")
        .body("{not json");
    assert_error(&send(not_json).await, 400, "invalid_json");
    let no_type = server
        .client
        .post(server.url("/v1/tools/text/sha256/invoke"))
        .bearer_auth(&server.tokens["admin"])
        .body("{}");
    assert_error(&send(no_type).await, 415, "unsupported_media_type");
    let result = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "admin",
        json!({ "txt": "x" }),
    ))
    .await;
    assert_error(&result, 422, "invalid_arguments");
    let result = send(server.post("/v1/tools/nope/x/invoke", "admin", json!({}))).await;
    assert_error(&result, 404, "unknown_plugin");
    let result = send(server.post("/v1/tools/text/nope/invoke", "admin", json!({}))).await;
    assert_error(&result, 404, "unknown_tool");
    let result = send(server.get("/v1/audit?decision=maybe", Some("admin"))).await;
    assert_error(&result, 400, "invalid_query");
    let result = send(server.get("/v1/audit?limit=0", Some("admin"))).await;
    assert_error(&result, 400, "invalid_query");
    let result = send(
        server
            .get("/v1/tools", Some("admin"))
            .header("x-sigil-workspace", "nowhere"),
    )
    .await;
    assert_error(&result, 400, "unknown_workspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permitted_call_returns_the_plugins_result_and_is_recorded_as_that_user() {
    let server = Server::start().await;
    let (status, body) = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "hello" }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["sha256"], HELLO_SHA256);
    let call_id = body["call_id"].as_str().unwrap();

    let records = server
        .runtime()
        .audit()
        .query(&Filter {
            call_id: Some(call_id.to_string()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(records.len(), 2, "a decision and an outcome");
    for r in &records {
        assert_eq!(r.record.actor.user.as_deref(), Some("carol"));
        assert_eq!(r.record.actor.workspace.as_deref(), Some("main"));
        assert_eq!(r.record.actor.channel.as_deref(), Some("http"));
    }
    assert_eq!(records[0].record.decision, Some(Verdict::Allow));
    assert_eq!(records[1].record.outcome.as_deref(), Some("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_the_tool_capability_is_refused_and_the_refusal_is_recorded() {
    let server = Server::start().await;
    let result = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "bob",
        json!({ "text": "hello" }),
    ))
    .await;
    assert_error(&result, 403, "forbidden");
    assert!(
        result.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("denied")
    );

    let denied = server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some("bob".into()),
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].record.capability.as_deref(),
        Some("tool.text.sha256")
    );
    assert_eq!(denied[0].record.actor.channel.as_deref(), Some("http"));
    // The refused call never reached the plugin: no outcome record.
    let outcomes = server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some("bob".into()),
            kind: Some(sigil_audit::RecordKind::Outcome),
            ..Filter::default()
        })
        .unwrap();
    assert!(outcomes.is_empty());

    // A workspace narrower than the user: admin in `narrow` may call fs tools only.
    let result = send(
        server
            .post(
                "/v1/tools/text/sha256/invoke",
                "admin",
                json!({ "text": "x" }),
            )
            .header("x-sigil-workspace", "narrow"),
    )
    .await;
    assert_error(&result, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_needs_admin_plugins_and_drives_the_lifecycle() {
    let server = Server::start().await;
    let result = send(server.post("/v1/plugins/text/disable", "carol", json!({}))).await;
    assert_error(&result, 403, "forbidden");
    let refused = server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some("carol".into()),
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].record.capability.as_deref(),
        Some("admin.plugins")
    );
    assert_eq!(refused[0].record.plugin, None);
    assert_eq!(
        server
            .runtime()
            .manager()
            .get("text")
            .unwrap()
            .summary()
            .state
            .to_string(),
        "running"
    );

    let (status, body) = send(server.post("/v1/plugins/text/disable", "admin", json!({}))).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("stopped")),
        "{body}"
    );
    let result = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "hello" }),
    ))
    .await;
    assert_error(&result, 409, "plugin_not_running");
    let result = send(server.post("/v1/plugins/text/disable", "admin", json!({}))).await;
    assert_error(&result, 409, "wrong_state");

    let (status, body) = send(server.post("/v1/plugins/text/enable", "admin", json!({}))).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let (status, body) = send(server.post("/v1/plugins/text/reload", "admin", json!({}))).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let (status, _) = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "hello" }),
    ))
    .await;
    assert_eq!(status, 200);

    assert_error(
        &send(server.delete("/v1/plugins/text", "admin")).await,
        409,
        "builtin_plugin",
    );
    assert_error(
        &send(server.delete("/v1/plugins/nope", "admin")).await,
        404,
        "unknown_plugin",
    );
    assert_error(
        &send(server.get("/v1/plugins/nope", Some("admin"))).await,
        404,
        "unknown_plugin",
    );
    let (status, detail) = send(server.get("/v1/plugins/text", Some("bob"))).await;
    assert_eq!(status, 200);
    assert_eq!(detail["manifest"]["id"], "text");
    assert!(
        detail["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "sha256")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_installed_reloaded_and_removed_through_the_api() {
    let server = Server::start().await;
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().join("echo");
    echo_plugin(&dir, "1.0.0", b"echo");
    let path = dir.display().to_string();

    let result = send(server.post("/v1/plugins", "carol", json!({ "path": path }))).await;
    assert_error(&result, 403, "forbidden");
    let result = send(server.post("/v1/plugins", "admin", json!({ "path": "relative/dir" }))).await;
    assert_error(&result, 400, "bad_source");

    let (status, body) = send(server.post("/v1/plugins", "admin", json!({ "path": path }))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "echo");
    assert_eq!(body["state"], "running");
    let installed = server.home.path().join("plugins").join("echo");
    assert!(installed.join("plugin.wasm").is_file());
    let config = std::fs::read_to_string(server.home.path().join("sigil.toml")).unwrap();
    assert!(
        config.contains("[plugins.echo]") && config.contains("kv.read:echo.*"),
        "{config}"
    );

    let (status, body) = send(server.post(
        "/v1/tools/echo/echo/invoke",
        "carol",
        json!({ "said": "hi" }),
    ))
    .await;
    assert_eq!(
        (status, &body["output"]),
        (200, &json!({ "said": "hi" })),
        "{body}"
    );

    let result = send(server.post("/v1/plugins", "admin", json!({ "path": path }))).await;
    assert_error(&result, 409, "already_installed");

    // A broken new generation does not replace the running one on reload.
    std::fs::write(installed.join("plugin.wasm"), b"broken").unwrap();
    let result = send(server.post("/v1/plugins/echo/reload", "admin", json!({}))).await;
    assert_error(&result, 422, "load_failed");
    let (status, _) = send(server.post("/v1/tools/echo/echo/invoke", "carol", json!({}))).await;
    assert_eq!(status, 200, "the old generation still serves");

    // A fixed one does, with its new version.
    echo_plugin(&installed, "1.1.0", b"echo");
    let (status, body) = send(server.post("/v1/plugins/echo/reload", "admin", json!({}))).await;
    assert_eq!(
        (status, body["version"].as_str()),
        (200, Some("1.1.0")),
        "{body}"
    );

    let (status, body) = send(server.delete("/v1/plugins/echo", "admin")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files_deleted"], true);
    assert!(!installed.exists());
    let config = std::fs::read_to_string(server.home.path().join("sigil.toml")).unwrap();
    assert!(!config.contains("plugins.echo"), "{config}");
    let result = send(server.post("/v1/tools/echo/echo/invoke", "carol", json!({}))).await;
    assert_error(&result, 404, "unknown_plugin");

    // A plugin may not take a compiled-in plugin's id.
    let impostor = source.path().join("text");
    echo_plugin(&impostor, "1.0.0", b"echo");
    let manifest = std::fs::read_to_string(impostor.join("plugin.toml"))
        .unwrap()
        .replace("id = \"echo\"", "id = \"text\"");
    std::fs::write(impostor.join("plugin.toml"), manifest).unwrap();
    let result = send(server.post(
        "/v1/plugins",
        "admin",
        json!({ "path": impostor.display().to_string() }),
    ))
    .await;
    assert_error(&result, 422, "install_refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_routes_need_admin_audit_and_filter_and_verify() {
    let server = Server::start().await;
    send(server.post(
        "/v1/tools/text/sha256/invoke",
        "bob",
        json!({ "text": "a" }),
    ))
    .await;
    send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "a" }),
    ))
    .await;

    assert_error(
        &send(server.get("/v1/audit", Some("carol"))).await,
        403,
        "forbidden",
    );
    assert_error(
        &send(server.get("/v1/audit/verify", Some("bob"))).await,
        403,
        "forbidden",
    );

    let (status, body) = send(server.get("/v1/audit?user=bob&decision=deny", Some("admin"))).await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    // His refused call, and his refused look at the audit log.
    let capabilities: Vec<&str> = records
        .iter()
        .map(|r| r["capability"].as_str().unwrap())
        .collect();
    assert_eq!(capabilities, ["tool.text.sha256", "admin.audit"], "{body}");
    assert!(records.iter().all(|r| r["actor"]["user"] == "bob"));
    let (_, body) = send(server.get("/v1/audit?user=bob&plugin=text", Some("admin"))).await;
    assert_eq!(body["records"].as_array().unwrap().len(), 1, "{body}");

    let (_, body) = send(server.get("/v1/audit?plugin=text&limit=1", Some("admin"))).await;
    assert_eq!(body["records"].as_array().unwrap().len(), 1);
    assert_eq!(body["records"][0]["kind"], "outcome");
    let (_, body) = send(server.get("/v1/audit?since=1h&user=carol", Some("admin"))).await;
    assert!(body["records"].as_array().unwrap().len() >= 3, "{body}");

    let (status, body) = send(server.get("/v1/audit/verify", Some("admin"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["intact"], true);
    assert!(body["records"].as_u64().unwrap() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_and_users_come_from_sigil_toml() {
    let server = Server::start().await;
    let (status, body) = send(server.get("/v1/workspaces", Some("bob"))).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "narrow"]);
    assert_eq!(body["workspaces"][0]["default"], true);
    let (_, body) = send(server.get("/v1/users", Some("bob"))).await;
    assert_eq!(body["me"], "bob");
    let bob = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bob")
        .unwrap();
    assert_eq!(bob["permissions"], json!(["tool.fs.*"]));
}

/// Reads server-sent events until one satisfies `wanted`.
async fn next_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    wanted: impl Fn(&str, &Value) -> bool,
) -> (String, Value) {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
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
                return (name, value);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_decisions_and_plugin_state_changes() {
    let mut server = Server::start().await;
    let mut admin = server
        .get("/v1/events", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 200);
    assert!(
        admin.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut bob = server.get("/v1/events", Some("bob")).send().await.unwrap();
    let (mut admin_buf, mut bob_buf) = (String::new(), String::new());
    let (_, ready) = next_event(&mut admin, &mut admin_buf, |n, _| n == "ready").await;
    assert_eq!(ready["decisions"], "all");
    let (_, ready) = next_event(&mut bob, &mut bob_buf, |n, _| n == "ready").await;
    assert_eq!(ready["decisions"], "own");

    let (_, body) = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "hello" }),
    ))
    .await;
    let call_id = body["call_id"].as_str().unwrap().to_string();
    let (_, event) = next_event(&mut admin, &mut admin_buf, |n, v| {
        n == "decision" && v["call_id"] == call_id.as_str()
    })
    .await;
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["capability"], "tool.text.sha256");
    assert_eq!(event["actor"]["user"], "carol");
    assert!(event["seq"].as_u64().unwrap() >= 1);

    send(server.post("/v1/plugins/fs/disable", "admin", json!({}))).await;
    let (_, event) = next_event(&mut admin, &mut admin_buf, |n, _| n == "plugin_state").await;
    assert_eq!(
        (
            event["plugin"].as_str(),
            event["from"].as_str(),
            event["to"].as_str()
        ),
        (Some("fs"), Some("running"), Some("stopped"))
    );
    // Bob sees the state change but not carol's decision: his next decision event is his own.
    let (_, event) = next_event(&mut bob, &mut bob_buf, |n, _| n == "plugin_state").await;
    assert_eq!(event["plugin"], "fs");
    send(server.post(
        "/v1/tools/text/sha256/invoke",
        "bob",
        json!({ "text": "x" }),
    ))
    .await;
    let (_, event) = next_event(&mut bob, &mut bob_buf, |n, _| n == "decision").await;
    assert_eq!(event["actor"]["user"], "bob");
    assert_eq!(event["decision"], "deny");

    // Shutdown ends the streams instead of waiting on them forever.
    server.shutdown().await;
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(_)) = admin.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_in_flight_finish_and_leaves_every_record_in_a_verifiable_log() {
    let mut server = Server::start().await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(
                server
                    .post("/v1/tools/slow/sleep/invoke", "carol", json!({ "ms": 500 }))
                    .send(),
            )
        })
        .collect();
    while server.slow.inside.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let db = server.home.path().join("sigil.db");
    let address = server.address;
    server.shutdown().await;
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the gateway still accepts connections"
    );

    let log = AuditLog::open(
        &db,
        &sigil_audit::KeyFiles::in_dir(&server.home.path().join("state")),
    )
    .unwrap();
    assert!(log.verify().unwrap().is_intact());
    let records = log
        .query(&Filter {
            plugin: Some("slow".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        records.len(),
        40,
        "a decision and an outcome for each of 20 calls"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.record.outcome.as_deref() == Some("ok"))
            .count(),
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_all_succeed_and_each_leaves_two_records() {
    const CALLS: usize = 1000;
    let mut server = Server::start().await;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let request = server.post(
                "/v1/tools/text/sha256/invoke",
                "carol",
                json!({ "text": format!("call {i}") }),
            );
            tokio::spawn(async move {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let body = response.text().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();
    let finished = tokio::time::timeout(Duration::from_secs(600), async {
        let mut errors = Vec::new();
        for call in calls {
            match call.await.unwrap() {
                Ok((200, _)) => {}
                other => errors.push(format!("{other:?}")),
            }
        }
        errors
    })
    .await
    .expect("1,000 calls did not finish within ten minutes");
    assert!(
        finished.is_empty(),
        "{} errors: {:?}",
        finished.len(),
        &finished[..finished.len().min(5)]
    );

    let db = server.home.path().join("sigil.db");
    server.shutdown().await;
    let log = AuditLog::open(
        &db,
        &sigil_audit::KeyFiles::in_dir(&server.home.path().join("state")),
    )
    .unwrap();
    let records = log
        .query(&Filter {
            plugin: Some("text".into()),
            user: Some("carol".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(records.len(), 2 * CALLS);
    let report = log.verify().unwrap();
    assert!(report.is_intact());
    assert_eq!(report.records, 2 * CALLS as u64);
}
