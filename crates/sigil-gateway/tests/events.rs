//! `/v1/events` over real HTTP lasts only as long as what let it open: revoking its token, or
//! a configuration reload taking away its user, the user's place in the workspace or the
//! permission that let it see every decision, ends the stream before it delivers anything
//! more, and the refusal is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Server, send};
use serde_json::{Value, json};
use sigil_audit::{Filter, Verdict};

/// Carol calls tools; the watcher's table comes after.
const CONFIG: &str = r#"
[defaults]
user = "admin"
workspace = "main"

[workspaces.main]
allow = ["*"]

[workspaces.lab]
allow = ["*"]

[users.admin]
permissions = ["*"]
workspaces = ["main", "lab"]

[users.bob]
permissions = ["tool.fs.*"]

[users.carol]
permissions = ["tool.text.*"]
"#;

/// The watcher sees every decision (`admin.audit`); its streams open in `main`.
const WATCHER: &str =
    "[users.watcher]\npermissions = [\"admin.audit\"]\nworkspaces = [\"main\", \"lab\"]\n";

fn config(watcher: &str) -> String {
    format!("{CONFIG}\n{watcher}")
}

/// One server-sent event: its name and data.
type Sse = (String, Value);

/// Parses the complete events in `buffer`, leaving a partial one there.
fn drain(buffer: &mut String) -> Vec<Sse> {
    let mut events = Vec::new();
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
        // Keep-alive comments have no name.
        if !name.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    events
}

struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(server: &Server, token: &str) -> Stream {
        let response = server
            .client
            .get(server.url("/v1/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let mut stream = Stream {
            response,
            buffer: String::new(),
        };
        let ready = stream.until(|name, _| name == "ready").await;
        assert_eq!(ready["decisions"], "all");
        stream
    }

    /// Reads until an event satisfies `wanted`.
    async fn until(&mut self, wanted: impl Fn(&str, &Value) -> bool) -> Value {
        loop {
            if let Some((_, value)) = drain(&mut self.buffer)
                .into_iter()
                .find(|(name, value)| wanted(name, value))
            {
                return value;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.response.chunk())
                .await
                .expect("no event within a minute")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads to the end of the stream and returns every event it still delivered. Fails if
    /// the stream is still open a minute later (keep-alive comments do not count).
    async fn rest(mut self) -> Vec<Sse> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => panic!(
                    "the stream is still open a minute later; it delivered {:?}",
                    drain(&mut self.buffer)
                ),
                // A connection cut short ends the stream too.
                Ok(Err(_)) | Ok(Ok(None)) => return drain(&mut self.buffer),
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
            }
        }
    }
}

/// Carol calls `text/sha256`; returns the call's id.
async fn carol_calls(server: &Server) -> String {
    let (status, body) = send(server.post(
        "/v1/tools/text/sha256/invoke",
        "carol",
        json!({ "text": "hello" }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body["call_id"].as_str().unwrap().to_string()
}

/// The rules of the denies recorded for the watcher.
fn watcher_denies(server: &Server) -> Vec<(Option<String>, String)> {
    server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some("watcher".into()),
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| (r.record.capability, r.record.rule))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_is_revoked_and_delivers_nothing_after() {
    let mut server = Server::start_with(&config(WATCHER)).await;
    let token = server.token_store().create("watcher", None).unwrap();
    let mut stream = Stream::open(&server, &token.secret).await;
    // Open and delivering: the watcher sees carol's call.
    let seen = carol_calls(&server).await;
    stream
        .until(|name, value| name == "decision" && value["call_id"] == seen.as_str())
        .await;

    // Revoked as `sigil token revoke` does it: in the database, from another connection.
    server
        .token_store()
        .revoke(&token.info.id)
        .unwrap()
        .unwrap();
    let unseen = carol_calls(&server).await;
    let delivered = stream.rest().await;
    assert!(
        delivered
            .iter()
            .all(|(name, _)| name != "decision" && name != "lagged"),
        "delivered after the revocation: {delivered:?}"
    );
    assert!(!format!("{delivered:?}").contains(&unseen), "{delivered:?}");
    let denies = watcher_denies(&server);
    assert!(
        denies.iter().any(|(_, rule)| rule
            == &format!("event stream closed: token `{}` was revoked", token.info.id)),
        "{denies:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_a_reload_takes_away_what_let_it_open() {
    // (the watcher's table after the reload, the capability recorded with the deny, what the
    // recorded rule says)
    let cases = [
        (
            "[users.watcher]\npermissions = [\"tool.text.*\"]\nworkspaces = [\"main\", \"lab\"]\n",
            Some("admin.audit"),
            "user `watcher` does not hold it",
        ),
        (
            "[users.watcher]\npermissions = [\"admin.audit\"]\nworkspaces = [\"lab\"]\n",
            None,
            "user `watcher` is not a member of workspace `main`",
        ),
        ("", None, "user `watcher` is not configured in sigil.toml"),
    ];
    for (watcher, capability, says) in cases {
        let mut server = Server::start_with(&config(WATCHER)).await;
        let token = server.token_store().create("watcher", None).unwrap();
        let mut stream = Stream::open(&server, &token.secret).await;
        let seen = carol_calls(&server).await;
        stream
            .until(|name, value| name == "decision" && value["call_id"] == seen.as_str())
            .await;

        // sigil.toml edited, then reloaded through the API by admin.
        std::fs::write(server.home.path().join("sigil.toml"), config(watcher)).unwrap();
        let (status, body) = send(server.post("/v1/config/reload", "admin", json!({}))).await;
        assert_eq!(status, 200, "{body}");

        let unseen = carol_calls(&server).await;
        let delivered = stream.rest().await;
        assert!(
            delivered
                .iter()
                .all(|(name, value)| name != "config_changed"
                    && !(name == "decision" && value["call_id"] == unseen.as_str())),
            "{says}: delivered after the reload: {delivered:?}"
        );
        let denies = watcher_denies(&server);
        assert!(
            denies
                .iter()
                .any(|(c, rule)| c.as_deref() == capability && rule.contains(says)),
            "{says}: {denies:?}"
        );
        server.shutdown().await;
    }
}
