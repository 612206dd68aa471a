//! Workspaces over real HTTP: a request acts only in a workspace its user belongs to
//! (`[users.<name>] workspaces`), so naming another workspace escapes none of the denies of
//! one's own; and an approval is decided in the workspace of the call it holds, whatever
//! workspace the approver's request names. Every refusal is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Server, assert_error, send};
use serde_json::{Value, json};
use sigil_audit::{Filter, Verdict};

/// `main` denies the text tools; `lab` allows everything. Carol belongs to `main` alone (no
/// `workspaces` field: `[defaults] workspace`); admin belongs to both.
const ESCAPE: &str = r#"
[defaults]
user = "admin"
workspace = "main"

[workspaces.main]
allow = ["*"]
deny = ["tool.text.*"]

[workspaces.lab]
allow = ["*"]

[users.admin]
permissions = ["*"]
workspaces = ["main", "lab"]

[users.bob]
permissions = ["tool.fs.*"]

[users.carol]
permissions = ["tool.text.*", "approvals.decide"]
"#;

fn in_workspace(request: reqwest::RequestBuilder, workspace: &str) -> reqwest::RequestBuilder {
    request.header("x-sigil-workspace", workspace)
}

/// The denies recorded for `user` acting in `workspace`.
fn denies(server: &Server, user: &str, workspace: &str) -> Vec<String> {
    server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some(user.into()),
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.record.actor.workspace.as_deref() == Some(workspace))
        .map(|r| r.record.rule)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_deny_is_not_escaped_by_naming_a_workspace_the_user_is_not_in() {
    let mut server = Server::start_with(ESCAPE).await;
    let sha = |user: &str| {
        server.post(
            "/v1/tools/text/sha256/invoke",
            user,
            json!({ "text": "hello" }),
        )
    };
    // In her own workspace carol's call meets `main`'s deny.
    let denied = send(sha("carol")).await;
    assert_error(&denied, 403, "forbidden");
    assert!(
        denied.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workspace `main` denies"),
        "{}",
        denied.1
    );

    // Naming `lab`, where the text tools are allowed, is refused on every route: carol does
    // not belong to it.
    let attempts = [
        in_workspace(sha("carol"), "lab"),
        in_workspace(server.get("/v1/tools", Some("carol")), "lab"),
        in_workspace(server.get("/v1/approvals", Some("carol")), "lab"),
        in_workspace(server.get("/v1/users", Some("carol")), "lab"),
        in_workspace(
            server.post("/v1/approvals/any/approve", "carol", json!({})),
            "lab",
        ),
    ];
    let count = attempts.len();
    for attempt in attempts {
        let refused = send(attempt).await;
        assert_error(&refused, 403, "workspace_forbidden");
        let message = refused.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("not a member of workspace `lab`") && message.contains("main"),
            "{message}"
        );
    }
    let events = in_workspace(server.get("/v1/events", Some("carol")), "lab")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 403);

    // Each refusal is recorded, as carol in `lab`.
    let recorded = denies(&server, "carol", "lab");
    assert_eq!(recorded.len(), count + 1, "{recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|rule| rule.contains("user `carol` is not a member of workspace `lab`")),
        "{recorded:?}"
    );

    // A member may switch: admin's call in `lab` runs, in `main` it is denied.
    let (status, body) = send(in_workspace(sha("admin"), "lab")).await;
    assert_eq!(status, 200, "{body}");
    assert_error(&send(sha("admin")).await, 403, "forbidden");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_no_workspace_is_refused_and_recorded() {
    let config = format!("{ESCAPE}\n[users.nomad]\npermissions = [\"*\"]\nworkspaces = []\n");
    let mut server = Server::start_with(&config).await;
    let nomad = server.token_store().create("nomad", None).unwrap().secret;
    let refused = send(
        server
            .client
            .get(server.url("/v1/tools"))
            .bearer_auth(&nomad),
    )
    .await;
    assert_error(&refused, 403, "workspace_forbidden");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to no workspace"),
        "{}",
        refused.1
    );
    assert_eq!(denies(&server, "nomad", "main").len(), 1);
    server.shutdown().await;
}

/// `main` allows no approval decisions, `lab` does. Dora belongs to both and holds
/// `approvals.decide`, so she may decide in `lab` only; carol's calls of `fs` wait for one.
const APPROVALS: &str = r#"
[defaults]
user = "admin"
workspace = "main"

[workspaces.main]
allow = ["tool.*", "admin.*"]

[workspaces.lab]
allow = ["*"]

[users.admin]
permissions = ["*"]
workspaces = ["main", "lab"]

[users.bob]
permissions = []

[users.carol]
permissions = ["tool.fs.*", "fs.*"]
workspaces = ["main", "lab"]

[users.dora]
permissions = ["approvals.decide"]
workspaces = ["main", "lab"]

[approvals]
require = ["scope:host"]
timeout_ms = 60000
"#;

/// Polls `GET /v1/approvals` as carol until `count` of her calls are pending.
async fn pending(server: &Server, count: usize) -> Vec<Value> {
    for _ in 0..600 {
        let (status, body) = send(server.get("/v1/approvals", Some("carol"))).await;
        assert_eq!(status, 200, "{body}");
        let approvals = body["approvals"].as_array().unwrap().clone();
        if approvals.len() == count {
            return approvals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {count} pending approvals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_decided_in_the_workspace_of_its_call_not_the_approvers() {
    let mut server = Server::start_with(APPROVALS).await;
    let dora = server.token_store().create("dora", None).unwrap().secret;
    let dir = server.home.path().display().to_string();
    let call = |workspace: &str| {
        let request = in_workspace(
            server.post(
                "/v1/tools/fs/list_dir/invoke",
                "carol",
                json!({ "path": dir }),
            ),
            workspace,
        );
        tokio::spawn(send(request))
    };
    let in_main = call("main");
    pending(&server, 1).await;
    let in_lab = call("lab");
    let held = pending(&server, 2).await;
    let id_in = |workspace: &str| {
        held.iter()
            .find(|a| a["actor"]["workspace"] == workspace)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (main_id, lab_id) = (id_in("main"), id_in("lab"));

    // Dora, naming `lab` where she may decide, sees only the approval she may decide.
    let (status, listed) = send(in_workspace(
        server
            .client
            .get(server.url("/v1/approvals"))
            .bearer_auth(&dora),
        "lab",
    ))
    .await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![lab_id.as_str()]);

    // Naming `lab` does not let her approve the call made in `main`: refused and recorded, as
    // dora in `main`, and the call still waits.
    let refused = send(in_workspace(
        server
            .client
            .post(server.url(&format!("/v1/approvals/{main_id}/approve")))
            .bearer_auth(&dora),
        "lab",
    ))
    .await;
    assert_error(&refused, 403, "forbidden");
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`approvals.decide` in workspace `main`")
            && message.contains("workspace `main` does not allow it"),
        "{message}"
    );
    let recorded: Vec<_> = server
        .runtime()
        .audit()
        .query(&Filter {
            user: Some("dora".into()),
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (
            recorded[0].record.capability.as_deref(),
            recorded[0].record.actor.workspace.as_deref()
        ),
        (Some("approvals.decide"), Some("main"))
    );
    assert_eq!(pending(&server, 2).await.len(), 2);
    assert!(!in_main.is_finished());

    // The call made in `lab` she approves, whatever her request names (here `main`, where she
    // could decide nothing); the decision is recorded in `lab`.
    let (status, decided) = send(in_workspace(
        server
            .client
            .post(server.url(&format!("/v1/approvals/{lab_id}/approve")))
            .bearer_auth(&dora),
        "main",
    ))
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["rule"], "approved by dora");
    let (status, result) = in_lab.await.unwrap();
    assert_eq!(status, 200, "{result}");
    let approved = server
        .runtime()
        .audit()
        .query(&Filter {
            call_id: Some(decided["call_id"].as_str().unwrap().into()),
            user: Some("dora".into()),
            ..Filter::default()
        })
        .unwrap();
    assert!(
        approved
            .iter()
            .any(|r| r.record.decision == Some(Verdict::Allow)
                && r.record.actor.workspace.as_deref() == Some("lab")
                && r.record.rule == "approved by dora"),
        "{approved:?}"
    );

    // Nobody may decide in `main`: the held call is denied when the daemon stops.
    server.shutdown().await;
    let (status, _) = in_main.await.unwrap();
    assert_eq!(status, 403);
}
